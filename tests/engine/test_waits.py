"""The engine's two deadline waits: futures in memory, and small values computed together."""

from __future__ import annotations

import threading
import time

import dask
import dask.array as da
import numpy as np
import pytest
from dask_quorum.pipeline.engine import compute_within, wait_in_memory

_release = threading.Event()


def _blocked(x):
    _release.wait(30)  # ends at once when the test sets the event
    return x


def _fails(x):
    raise ValueError(f"bad block {x}")


def test_values_in_order_and_nothing_kept(client4):
    x = da.arange(100, chunks=10)
    total, top, listed = compute_within(client4, [x.sum(), x.max(), dask.delayed(list)([1, 2])], 30, "stats")
    assert (total, top, listed) == (4950, 99, [1, 2])
    assert compute_within(client4, [], 30, "nothing") == []
    deadline = time.monotonic() + 10
    while client4.refcount and time.monotonic() < deadline:  # releases reach the client asynchronously
        time.sleep(0.05)
    assert not client4.refcount


def test_a_task_error_is_raised_as_the_task_raised_it(client4):
    with pytest.raises(ValueError, match="bad block 3"):
        compute_within(client4, [dask.delayed(_fails)(3)], 30, "the check")
    future = client4.submit(_fails, 4, pure=False)
    with pytest.raises(ValueError, match="bad block 4"):
        wait_in_memory([future], 30, "the replica")


def test_the_deadline_names_what_and_the_setting_and_cancels(client4):
    _release.clear()
    try:
        with pytest.raises(TimeoutError, match=r"^the pass over the edges was not computed within 0.3 s "
                                               r"\(quorum\.setup-timeout\)$"):
            compute_within(client4, [dask.delayed(_blocked, pure=False)(1)], 0.3, "the pass over the edges")
        futures = [client4.submit(_blocked, 2, pure=False)]
        with pytest.raises(TimeoutError, match=r"^placing within 0.2 s; raise it$"):
            wait_in_memory(futures, 0.2, "placing", "; raise it")
        assert futures[0].status == "pending"  # wait_in_memory leaves the caller's futures alone
    finally:
        _release.set()


def test_release_not_cancel_keeps_shared_blocks(client4):
    """Values computed from a persisted collection leave its blocks in memory."""
    x = client4.persist(da.from_array(np.arange(40.0), chunks=10))
    (total,) = compute_within(client4, [x.sum()], 30, "the sum")
    assert total == 780.0
    (again,) = compute_within(client4, [(2 * x).sum()], 30, "twice the sum")
    assert again == 1560.0
    assert all(f.status == "finished" for f in client4.futures_of(x))
