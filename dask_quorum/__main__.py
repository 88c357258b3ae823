"""``python -m dask_quorum`` runs the command line."""

import sys

from dask_quorum.cli import main

if __name__ == "__main__":
    sys.exit(main())
