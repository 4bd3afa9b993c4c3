"""Malformed HTTP requests, sent without a token over a raw socket to a real `csignal control`,
are each answered 400 and logged as one WARNING line without a traceback: before, aiohttp logged
every one at ERROR with a traceback, so anyone reaching the port could fill control's log."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import Iterator

import pytest

from stream.broker import EmbeddedBroker
from tests.support.processes import ControlProcess, start_control
from tests.support.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

_HOST = b"Host: 127.0.0.1\r\n"
MALFORMED = {
    "a 2 MB header": b"GET /healthz HTTP/1.1\r\n"
    + _HOST
    + b"X-Big: "
    + b"a" * 2_000_000
    + b"\r\n\r\n",
    "100,000 headers": b"GET /healthz HTTP/1.1\r\n"
    + _HOST
    + b"".join(b"X-%d: 1\r\n" % i for i in range(100_000))
    + b"\r\n",
    "Content-Length with Transfer-Encoding": b"POST /api/v1/changes HTTP/1.1\r\n"
    + _HOST
    + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "Content-Length -1": b"POST /api/v1/changes HTTP/1.1\r\n"
    + _HOST
    + b"Content-Length: -1\r\n\r\n",
}


@pytest.fixture(scope="module")
def control(
    module_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlProcess]:
    running = start_control(module_broker, tmp_path_factory.mktemp("malformed") / "var")
    try:
        yield running
    finally:
        running.stop()


def _send(api: str, data: bytes) -> bytes:
    """Send `data` as it is and read the answer until the server closes the connection."""
    host, _, port = api.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        # Refused before it was all read: the answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(data)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                answer += chunk
        return answer


@pytest.mark.parametrize("what", list(MALFORMED))
async def test_a_malformed_request_is_one_warning_line(control: ControlProcess, what: str) -> None:
    before = len(control.log())
    answer = await asyncio.to_thread(_send, control.api, MALFORMED[what])
    assert answer.split(b"\r\n", 1)[0] in (
        b"HTTP/1.0 400 Bad Request",
        b"HTTP/1.1 400 Bad Request",
    ), answer[:200]

    async def logged() -> str | None:
        new = control.log()[before:]
        return new if "malformed HTTP request refused" in new else None

    new = await until(logged, f"control logged the malformed request ({what})", within=30.0)
    assert new is not None
    print(f"{what}: {new.strip()[:300]}")
    lines = [line for line in new.splitlines() if "malformed HTTP request" in line]
    assert len(lines) == 1, new
    assert "WARNING" in lines[0] and "400" in lines[0]
    assert "Traceback" not in new and "ERROR" not in new
    # What the warning wrote: its line and any continuation lines (a dump would be those), not
    # the rest of the log: the module's control may still be logging its start.
    after = new[new.index(lines[0]) :].splitlines()
    block = [after[0], *itertools.takewhile(lambda line: not line.startswith("["), after[1:])]
    assert len("\n".join(block)) < 2000, block
