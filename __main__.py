"""``python -m bundlerl``: the same command line as ``bundlerl`` (:func:`bundlerl.scripts.cli.main`)."""

import sys

from bundlerl.scripts.cli import main

if __name__ == "__main__":
    sys.exit(main())
