"""Stand-ins for the outside world: a Marketo sandbox, a Certain REST API sandbox and simulated
Certain traffic.

Only development, tests, demos and benchmarks use them; the production packages never import
them (import contract `production-no-simulators`), except the commands that run them:
`csignal sandbox`, `csignal certain-sandbox`, `csignal simulate` and `csignal run --demo`.
"""
