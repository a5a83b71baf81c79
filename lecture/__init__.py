"""The app: the demo server, the `lecture` command and the deck's tooling (slides, snapshots, figure export).

It imports the science library (``toolkit``) and the demos (``demos``); neither imports it back (a contract
checked by import-linter in `make test`).
"""
