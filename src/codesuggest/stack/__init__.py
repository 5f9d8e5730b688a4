"""The one-machine stack: the whole system on one machine (`codesuggest up/down/status/demo`).

Each part runs as its own `codesuggest <part> serve` process on loopback; this package only
provisions the data directory, supervises those processes and prints what runs where.
"""
