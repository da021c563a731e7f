"""python -m handoff_lib.cli: the `handoff` command."""

import sys

from handoff_lib.cli.main import main

sys.exit(main())
