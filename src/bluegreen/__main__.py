"""``python -m bluegreen``: the same as the ``bluegreen`` console script."""

from __future__ import annotations

import sys

from bluegreen.cli import main

if __name__ == "__main__":
    sys.exit(main())
