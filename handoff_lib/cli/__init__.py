"""Stage 8, cli: the `handoff` command (`main`), thin, one module per command group: it parses arguments,
calls the stages and says where the outputs went. It may import every stage; nothing imports it.
`python -m handoff_lib.cli` runs the same command.

| module | its commands |
|---|---|
| `main` | `handoff` itself: demo, demo-data, picture, inspect, lookup, run, schedule, notify, preset |
| `notes` | `handoff notes` (train, evaluate, classify) and `handoff themes` |
| `backtest` | `handoff backtest` and `handoff calibrate` |
| `store` | `handoff store` |
| `board` | `handoff board` (serve, users) |
"""
