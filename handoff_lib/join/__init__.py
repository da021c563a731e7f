"""Stage 2, join: make the loaded records of the four systems one order each. Identifiers are normalised and
crosswalked (order IDs, pick tickets, cartons, shipments, tracking numbers, customer POs) with the method and
confidence of each link; records are cut back to what was known at the review time; any order is found by any
of its identifiers; records get their source-system links. It may import load and the shared modules.

| module | its job |
|---|---|
| `identifiers` | identifier normalisation and the crosswalk (`build_crosswalk`, `build_order_picture`) |
| `asof` | the as-of cut: only what was known at the review time (`apply_as_of`) |
| `linked` | one moment's extracts loaded, judged, cut and linked (`load_and_link`); join-quality outputs |
| `links` | deep links into the source systems, per kind of record |
| `lookup` | an order by any of its identifiers, and its one-page view |
| `inspect` | onboarding: a draft site file for a folder of extracts, with its join quality |
"""
