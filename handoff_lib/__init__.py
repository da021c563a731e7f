"""handoff: the warehouse pick-pack handoff picture, joined across OMS/ERP, WMS, carrier and CRM extracts.

The library is laid out by stage, in the order an order flows from extract to board (docs/layout.md):

    load -> join -> rules -> history -> learn -> publish -> board -> cli

Each stage is a sub-package whose `__init__` says its job and what it may import. A module imports only
from its own stage, from a stage before it, or from the shared modules at the top (`errors`, the one
exception tree; `db`, DuckDB connection helpers; `exports`, files with untrusted text neutralised), which
import no stage. No import makes a circle. tests/test_layout.py reads every import with `ast` and fails
on an import that points up the flow or closes a circle; `STAGES` and `SHARED` below are that order.
"""

__version__ = "0.1.0"

STAGES = ("load", "join", "rules", "history", "learn", "publish", "board", "cli")  # down the flow: each may import those before it
SHARED = ("errors", "db", "exports")  # top-level modules every stage may import; they import no stage
