"""Posting changes to `POST /api/v1/changes` in batches: NDJSON encoding and file chunks.

A file is read in chunks of at most `DEFAULT_CHUNK_LINES` lines and `DEFAULT_CHUNK_BYTES` bytes
so a large export never sits in memory whole; rejections keep the file's 1-based line numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import IO, Any

from apiclient.rows import IngestResult

DEFAULT_CHUNK_LINES = 500
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024

ProgressHook = Callable[[int, IngestResult], None]
"""Called after each chunk with the lines read so far and the running result."""


def encode_batch(items: Sequence[Any] | bytes) -> tuple[bytes, int]:
    """NDJSON bytes for a batch (decoded items, or NDJSON already) and how many items it has."""
    if isinstance(items, bytes | bytearray):
        data = bytes(items)
        return data, sum(1 for line in data.splitlines() if line.strip())
    data = b"\n".join(
        json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode() for item in items
    )
    return data, len(items)


def read_chunk(
    handle: IO[bytes], max_lines: int, max_bytes: int, already: int
) -> tuple[list[bytes], int]:
    """The next lines of `handle` and the 1-based number of the first of them."""
    lines: list[bytes] = []
    size = 0
    while len(lines) < max_lines and size < max_bytes:
        line = handle.readline()
        if not line:
            break
        lines.append(line)
        size += len(line)
    return lines, already + 1
