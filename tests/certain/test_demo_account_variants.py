"""The demo account's variants: `full` (what `csignal run --demo` imports unless told otherwise)
and `batching` (the form-post flows inactive, for runs at tens of changes per second, whose
per-lead `submitForm` calls would outrun Marketo's 100 calls per 20 s)."""

from __future__ import annotations

from typing import Any

import pytest

from config.yamlio import load_text
from simulators.certain.demo_account import SECRET_ENV, demo_account, demo_account_yaml
from stream.cli import build_parser

URL = "http://127.0.0.1:9"


def _without_active(account: dict[str, Any]) -> dict[str, Any]:
    return {
        **account,
        "flows": [{k: v for k, v in f.items() if k != "active"} for f in account["flows"]],
    }


def test_batching_leaves_out_exactly_the_form_post_flows() -> None:
    full = demo_account(URL)
    batching = demo_account(URL, variant="batching")
    assert all(flow["active"] for flow in full["flows"])
    inactive = [flow["id"] for flow in batching["flows"] if not flow["active"]]
    form_posts = [f["id"] for f in full["flows"] if f["destination"]["action"] == "form_post"]
    assert inactive == form_posts and len(inactive) == 2
    assert _without_active(batching) == _without_active(full)  # nothing else differs


@pytest.mark.parametrize("variant", ["full", "batching"])
def test_each_variant_imports_without_problems(variant: str) -> None:
    loaded = load_text(demo_account_yaml(URL, variant=variant), {SECRET_ENV: "demo-s"})
    assert loaded.ok, loaded.problems
    assert loaded.account is not None
    active = {flow.id for flow in loaded.account.flows if flow.active}
    assert ("complete-form" in active) == (variant == "full")
    assert ("test-form" in active) == (variant == "full")
    assert "registered-to-nurture" in active


def test_an_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown demo account variant"):
        demo_account(URL, variant="quiet")


def test_csignal_run_imports_the_full_demo_account_unless_told_otherwise() -> None:
    parser = build_parser()
    assert parser.parse_args(["run", "--demo"]).demo_account == "full"
    chosen = parser.parse_args(["run", "--demo", "--demo-account", "batching"])
    assert chosen.demo_account == "batching"
