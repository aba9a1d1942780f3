"""``python -m ember`` and the ``ember`` console script: the command line (see ``ember.cli``)."""

from __future__ import annotations

import sys

from ember.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
