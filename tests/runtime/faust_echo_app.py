"""A minimal Faust app on Signal's settings: consume one topic, produce a transformed record.

Run as `python -m tests.runtime.faust_echo_app worker`; configured through the environment so a
test can start several workers of one group side by side:

- `ECHO_BROKER`: broker URL; `ECHO_APP_ID`: Faust app id (the consumer group);
- `ECHO_IN` / `ECHO_OUT`: topic names; `ECHO_PARTITIONS`: their partition count;
- `ECHO_WORKER`: a name stamped on every output record;
- `ECHO_EVENTS`: a file where each partition assignment is appended as a JSON line;
- `ECHO_DATA_DIR`: the data directory;
- `ECHO_SETTINGS`: JSON object of extra Faust settings (overrides).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import faust

from stream.faust_settings import faust_settings
from stream.topics import TopicSpec, faust_topic

BROKER = os.environ.get("ECHO_BROKER", "kafka://127.0.0.1:9092")
APP_ID = os.environ.get("ECHO_APP_ID", "signal-echo")
PARTITIONS = int(os.environ.get("ECHO_PARTITIONS", "4"))
WORKER = os.environ.get("ECHO_WORKER", "w0")
EVENTS = Path(os.environ.get("ECHO_EVENTS", "echo-events.jsonl"))

IN_TOPIC = TopicSpec(os.environ.get("ECHO_IN", "echo-in"), PARTITIONS, "n", "test input")
OUT_TOPIC = TopicSpec(os.environ.get("ECHO_OUT", "echo-out"), PARTITIONS, "n", "test output")

app = faust.App(
    APP_ID,
    broker=BROKER,
    **faust_settings(
        data_dir=os.environ.get("ECHO_DATA_DIR", "var"),
        topic_partitions=PARTITIONS,
        **json.loads(os.environ.get("ECHO_SETTINGS", "{}")),
    ),
)
source = faust_topic(app, IN_TOPIC, key_serializer="raw", value_serializer="json")
sink = faust_topic(app, OUT_TOPIC, key_serializer="raw", value_serializer="json")


def _record(kind: str, **fields: Any) -> None:
    with EVENTS.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"kind": kind, "worker": WORKER, "at": time.time(), **fields}) + "\n")


# mode types signal handlers with mypy_extensions' NamedArg, which mypy matches with no function
# at all (even `(sender, *args, signal, **kwargs)` is refused), hence the ignore.
@app.on_partitions_assigned.connect  # type: ignore[arg-type]
async def _assigned(sender: Any, assigned: Any, **_: Any) -> None:
    mine = sorted(tp.partition for tp in assigned if tp.topic == IN_TOPIC.name)
    _record("assigned", partitions=mine)


@app.agent(source)
async def echo(stream: Any) -> None:
    async for key, value in stream.items():
        await sink.send(
            key=key, value={"n": value["n"], "doubled": value["n"] * 2, "worker": WORKER}
        )


if __name__ == "__main__":
    app.main()
