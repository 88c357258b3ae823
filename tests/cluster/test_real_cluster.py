"""A real cluster: ``dask scheduler --preload ...`` and ``dask worker`` processes,
reached through ``Client("tcp://...")``, then the same over TLS.

Every estimator fits through the real cluster and gives the model the
in-process cluster gives. With TLS, certificates are made in the test; a
client without the cluster's certificate is refused within a bounded time.
"""

from __future__ import annotations

import datetime
import ipaddress
import time
import warnings

import numpy as np
import pytest
from dask_quorum.pipeline.cluster import (
    SCHEDULER_PRELOAD,
    SubprocessCluster,
    TLSFiles,
    scheduler_workers,
)
from dask_quorum.pipeline.engine import ROUND_PREFIX
from dask_quorum.pipeline.recorder import latencies
from distributed import Client
from distributed.security import Security
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.preprocessing import StandardScaler

from dask_quorum import LinearRegression, LogisticRegression

#: Longest a client without the right certificate may take to be refused.
REFUSED_WITHIN = 20.0


def _scaled(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


ESTIMATORS = {
    "logistic": (LogisticRegression, _scaled(load_breast_cancer)),
    "linear": (LinearRegression, _scaled(load_diabetes)),
}


def _fit(kind, client):
    """30 L-BFGS iterations: exact decoding makes them the same on any cluster."""
    cls, (X, y) = ESTIMATORS[kind]
    est = cls(scheme="cyclic", redundancy=2, max_iter=30, tol=1e-8, random_state=0, client=client)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: 30 iterations on purpose
        return est.fit(X, y)


@pytest.fixture(scope="module")
def local_models(client4):
    """The same fits on the in-process cluster: what the real cluster must reproduce."""
    return {kind: _fit(kind, client4) for kind in ESTIMATORS}


def _check_fits(client, local_models):
    for kind, local in local_models.items():
        est = _fit(kind, client)
        np.testing.assert_allclose(est.coef_, local.coef_, rtol=1e-5, atol=1e-7, err_msg=kind)
        np.testing.assert_allclose(est.intercept_, local.intercept_, rtol=1e-5, atol=1e-7)
        assert float(est.history_["loss"][-1]) == pytest.approx(float(local.history_["loss"][-1]), rel=1e-7)
        assert set(est.history_["worker"].values) == set(scheduler_workers(client))
    # the preloaded recorder saw the rounds without anyone attaching it
    keys = latencies(client)["key"].values.ravel()
    assert sum(ROUND_PREFIX in str(k) for k in keys) > 0


def test_every_estimator_fits_through_a_tcp_scheduler(local_models):
    with SubprocessCluster(3, preload=SCHEDULER_PRELOAD) as cluster:
        assert cluster.address.startswith("tcp://127.0.0.1:")
        with Client(cluster.address, timeout=30) as client:
            assert len(scheduler_workers(client)) == 3
            _check_fits(client, local_models)


# --------------------------------------------------------------------------- TLS


def _certificates(directory, common_name: str) -> TLSFiles:
    """A CA and a certificate it signed (client and server use), for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name(f"{common_name} CA"))
        .issuer_name(name(f"{common_name} CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {n: str(directory / f"{common_name}-{n}.pem") for n in ("ca", "cert", "key")}
    with open(paths["ca"], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["key"], "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return TLSFiles(ca_file=paths["ca"], cert_file=paths["cert"], key_file=paths["key"])


def _refused(connect) -> BaseException:
    start = time.monotonic()
    # distributed refuses a tls:// address without TLS settings with a TypeError
    # naming the TLS configuration; a failed handshake times out as OSError.
    with pytest.raises((OSError, TimeoutError, TypeError)) as err:
        client = connect()
        client.close()  # pragma: no cover - only reached if the connection was accepted
    assert time.monotonic() - start < REFUSED_WITHIN
    return err.value


def test_every_estimator_fits_over_tls_and_strangers_are_refused(local_models, tmp_path):
    tls = _certificates(tmp_path, "quorum")
    with SubprocessCluster(2, preload=SCHEDULER_PRELOAD, tls=tls) as cluster:
        assert cluster.address.startswith("tls://127.0.0.1:")
        with Client(cluster.address, security=tls.security(), timeout=30) as client:
            assert all(a.startswith("tls://") for a in scheduler_workers(client))
            _check_fits(client, local_models)

        # no certificate at all
        err = _refused(lambda: Client(cluster.address, timeout=3))
        assert "TLS" in str(err)
        # plain TCP to the TLS port
        _refused(lambda: Client(cluster.address.replace("tls://", "tcp://"), timeout=3))
        # a certificate signed by another authority
        stranger = _certificates(tmp_path, "stranger")
        _refused(lambda: Client(cluster.address, security=stranger.security(), timeout=3))
        # the cluster still serves its own clients afterwards
        with Client(cluster.address, security=Security(
            tls_ca_file=tls.ca_file, tls_client_cert=tls.cert_file, tls_client_key=tls.key_file,
            require_encryption=True,
        ), timeout=30) as client:
            assert len(scheduler_workers(client)) == 2


def test_a_scheduler_that_drops_every_handshake_times_out_with_its_address():
    """The first client is retried while the scheduler starts, up to the cluster's deadline, never forever."""
    import socket
    import subprocess
    import sys
    import tempfile
    import threading

    from dask_quorum.pipeline.cluster import SubprocessCluster

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    closing = threading.Event()

    def drop_all():  # accepts, then closes: what a scheduler still starting can do
        server.settimeout(0.1)
        while not closing.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=drop_all, daemon=True)
    thread.start()
    cluster = object.__new__(SubprocessCluster)  # no processes of its own: only the first-client loop
    cluster.address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    cluster.tls, cluster.timeout = None, 1.0
    cluster._logs = tempfile.TemporaryDirectory()
    cluster.scheduler = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(TimeoutError, match=f"no client could connect to {cluster.address} within 1 s"):
            cluster._first_client(time.monotonic() + cluster.timeout)
        cluster.scheduler.kill()
        cluster.scheduler.wait()
        with pytest.raises(RuntimeError, match="the scheduler exited early"):
            cluster._first_client(time.monotonic() + cluster.timeout)
    finally:
        cluster.scheduler.kill()
        closing.set()
        thread.join(5)
        server.close()
        cluster._logs.cleanup()
