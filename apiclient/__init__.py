"""The operator API's client (DESIGN 4.3), shared by the CLI, the console and tools.

Textual-free and independent of `stream` (an import contract holds it): `access` says where the
API is, which token to send and who is acting; `errors` is the one hierarchy of failures an
operator reads; `rows` the typed answers; `client.ApiClient` every route, each written once.
"""
