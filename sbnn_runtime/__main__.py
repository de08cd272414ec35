"""``python -m sbnn_runtime``: the runtime's command line (sbnn_runtime.cli)."""

import sys

from sbnn_runtime.cli import main

sys.exit(main())
