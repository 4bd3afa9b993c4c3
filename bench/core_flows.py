"""Pure evaluation cost as active flows grow: changes per second through `evaluate_all` (the
pure core, what the pipeline's route step calls) with the example account's flows copied to 7,
70, 350 and 1,050 active flows, the flow-by-flow reference (`tests.core.reference_evaluation`,
the evaluation before flows were planned) against the planned one, in the same run.

    python -m bench.core_flows [--seconds 2]

The changes are a fixed mix of registration status changes (tagged labels and an untagged one),
registration create/updates and session status changes; beyond the example's own flows, every
flow selects a tag no change carries, so at most the example's flows can match a change. Every
outcome of both is compared once before timing. Smoke mode: 7 and 70 flows, a few changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pydantic import SecretStr

from bench import arguments, sized
from config.models import Account, Flow
from stream.certain.events import ChangeEvent
from stream.core.catalog import EventCatalog
from stream.core.evaluate import evaluate_all
from stream.core.results import Evaluation
from tests.core.reference_evaluation import reference_evaluate_all
from tests.support.accounts import example_account
from tests.support.changes import catalog, event_change, registration_change

SIZES = (7, 70, 350, 1_050)

Evaluator = Callable[[ChangeEvent, Account, EventCatalog], list[tuple[Flow, Evaluation]]]


def account_with(flows: int) -> Account:
    """The example account's flows, active, then copies of them selecting tags no change
    carries, up to `flows` flows: the copies watch the same sources but cannot match."""
    account = example_account()
    for connection in account.connections:
        connection.client_secret = SecretStr("secret")
    base = account.flows
    made: list[Flow] = []
    for i in range(flows):
        flow = base[i % len(base)].model_copy(
            deep=True, update={"id": f"{base[i % len(base)].id}-{i}", "active": True}
        )
        if i >= len(base):
            wanted = flow.activate_for
            for name in ACTIVATE_FOR_LISTS:
                if getattr(wanted, name):
                    setattr(wanted, name, [f"other-{i}"])
        made.append(flow)
    account.flows = made
    return account


ACTIVATE_FOR_LISTS = (
    "registration_statuses",
    "custom_registration_properties",
    "session_registration_statuses",
    "event_statuses",
)


def changes() -> list[ChangeEvent]:
    made: list[ChangeEvent] = []
    for i, status in enumerate(["Need photo", "Checked In", "Badge Collected", "New"] * 3):
        made.append(registration_change(f"s{i}", status=status))
    for i in range(4):
        made.append(
            registration_change(
                f"c{i}",
                change_type="registration.create_update",
                status="Need photo",
                properties={"complete": bool(i % 2), "custom": {"Speaker": True}},
            )
        )
    for i in range(4):
        made.append(registration_change(f"x{i}", change_type="session_registration.status_change"))
    return made


def rate(
    evaluate: Evaluator,
    account: Account,
    cat: EventCatalog,
    batch: Sequence[ChangeEvent],
    seconds: float,
) -> float:
    done, started = 0, time.perf_counter()
    while True:
        for change in batch:
            evaluate(change, account, cat)
        done += len(batch)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--seconds", type=float, default=sized(2.0, 0.05))
    args = parser.parse_args(argv)
    cat = catalog(event_change())
    batch = changes()
    print("== core_flows: pure evaluation, changes/s by active flows (same run)")
    print(f"{'flows':>6} {'reference':>11} {'planned':>11} {'ratio':>7}")
    for flows in sized(SIZES, SIZES[:2]):
        account = account_with(flows)
        for change in batch:  # the figures compare equal work
            planned = evaluate_all(change, account, cat)
            reference = reference_evaluate_all(change, account, cat)
            assert [(f.id, e) for f, e in planned] == [(f.id, e) for f, e in reference]
        old = rate(reference_evaluate_all, account, cat, batch, args.seconds)
        new = rate(evaluate_all, account, cat, batch, args.seconds)
        print(f"{flows:>6} {old:>11,.0f} {new:>11,.0f} {new / old:>6.1f}x")


if __name__ == "__main__":
    main()
