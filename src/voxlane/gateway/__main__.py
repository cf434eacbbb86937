"""``python -m voxlane.gateway``: same as ``voxlane gateway``."""

from __future__ import annotations

import sys

from voxlane.gateway.cli import main

if __name__ == "__main__":
    sys.exit(main())
