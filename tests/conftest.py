"""Fixtures for every test folder come from `tests.support.fixtures` (brokers, sandboxes)."""

from tests.support.fixtures import broker, make_sandbox, module_broker, sandbox

__all__ = ["broker", "make_sandbox", "module_broker", "sandbox"]
