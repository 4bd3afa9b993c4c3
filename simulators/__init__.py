"""Stand-ins for the outside world: a Marketo sandbox and simulated Certain traffic.

Only development, tests, demos and benchmarks use them; the production packages never import
them (import contract `production-no-simulators`), except the commands that run them:
`csignal sandbox`, `csignal simulate` and `csignal run --demo`.
"""
