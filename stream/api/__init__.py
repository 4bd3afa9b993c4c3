"""The operator API (DESIGN 4.3): an aiohttp application served by the control worker.

`create_app(ApiDeps(...))` builds it from its dependencies, so it runs the same inside the Faust
worker and under a test client.
"""

from stream.api.app import create_app
from stream.api.deps import ApiDeps, ProduceChanges

__all__ = ["ApiDeps", "ProduceChanges", "create_app"]
