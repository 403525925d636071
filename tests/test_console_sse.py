"""The console's parser of server-sent events (app/console/static/js/sse.js), run by Node on byte streams
cut at awkward places. The browser tests read a live stream through it; these pin the format's corners."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from app.console import STATIC

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js; the browser tests run the parser too")

RUNNER = """
import { frames } from %s;
let input = '';
for await (const piece of process.stdin) input += piece;
const chunks = JSON.parse(input).map((hex) => Uint8Array.from(Buffer.from(hex, 'hex')));
const body = new ReadableStream({ start(c) { for (const x of chunks) c.enqueue(x); c.close(); } });
const out = [];
for await (const frame of frames(body)) out.push(frame);
console.log(JSON.stringify(out));
"""
# As sse-starlette writes GET /v1/stream: CRLF line ends, the ready frame with its retry, a ping.
STREAM = (
    'event: ready\r\ndata: {"last_event_id": 34}\r\nretry: 3000\r\n\r\n'
    ": ping\r\n\r\n"
    'id: 35\r\nevent: warning\r\ndata: {"area": "北港区"}\r\n\r\n'
).encode()
READY = {"event": "ready", "data": '{"last_event_id": 34}', "id": None, "retry": 3000}
WARNING = {"event": "warning", "data": '{"area": "北港区"}', "id": "35", "retry": None}


def parse(chunks: list[bytes]) -> list[dict[str, Any]]:
    assert NODE is not None
    script = RUNNER % json.dumps((STATIC / "js" / "sse.js").as_uri())
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", script],
        input=json.dumps([c.hex() for c in chunks]),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    frames: list[dict[str, Any]] = json.loads(done.stdout)
    return frames


def test_the_stream_in_one_chunk_gives_its_frames_and_no_frame_for_a_ping() -> None:
    assert parse([STREAM]) == [READY, WARNING]


def test_a_stream_cut_after_every_byte_gives_the_same_frames() -> None:
    """Inside a CRLF and inside a UTF-8 character too: neither ends a frame early or breaks a name."""
    assert parse([STREAM[i : i + 1] for i in range(len(STREAM))]) == [READY, WARNING]


def test_lf_and_cr_line_ends_and_data_over_several_lines() -> None:
    text = b"event: warning\ndata: first\ndata:second\n\nevent: ready\rdata:  kept space\r\r"
    assert parse([text]) == [
        {"event": "warning", "data": "first\nsecond", "id": None, "retry": None},
        {"event": "ready", "data": " kept space", "id": None, "retry": None},
    ]


def test_a_frame_cut_off_by_the_end_of_the_stream_is_dropped() -> None:
    assert parse([b'id: 36\nevent: warning\ndata: {"half": true}\n']) == []


def test_a_retry_that_is_not_a_number_is_ignored() -> None:
    assert parse([b"retry: soon\ndata: x\n\n"]) == [
        {"event": "message", "data": "x", "id": None, "retry": None}
    ]
