"""The IPC codec (pure): round trips, any split, garbage and oversized frames."""

from __future__ import annotations

import subprocess
import sys

import pytest

from voxlane.worker.ipc import (
    HEADER,
    CallEvent,
    CloseRequest,
    Decoder,
    Heartbeat,
    IPCProtocolError,
    JobExited,
    JobReport,
    Message,
    ParticipantDisconnected,
    Ready,
    StartJob,
    encode,
)

MESSAGES: list[Message] = [
    Ready(pid=123),
    StartJob("job_1", {"kind": "synthetic", "turns": ["hi"]}),
    Heartbeat(7),
    Heartbeat(8, open_connections=2, reconnects={"stt:idle": 1}),
    CallEvent("media_ready", {"port": 40000}),
    ParticipantDisconnected("hangup"),
    CloseRequest("job_shutdown"),
    JobReport({"session_id": "s", "close": {"reason": "x"}, "history": []}),
    JobExited(0),
]


def test_round_trip_whole() -> None:
    data = b"".join(encode(m) for m in MESSAGES)
    assert Decoder().feed(data) == MESSAGES


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
def test_round_trip_any_split(chunk: int) -> None:
    data = b"".join(encode(m) for m in MESSAGES)
    dec = Decoder()
    out: list[Message] = []
    for i in range(0, len(data), chunk):
        out.extend(dec.feed(data[i : i + chunk]))
    assert out == MESSAGES
    assert dec.pending_bytes == 0


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe not utf8",
        b"not json",
        b"[1, 2]",
        b'{"type": "nope"}',
        b'{"type": "heartbeat"}',
        b'{"type": "ready", "pid": 1, "extra": 2}',
    ],
)
def test_garbage_raises_and_stays_broken(body: bytes) -> None:
    dec = Decoder()
    with pytest.raises(IPCProtocolError):
        dec.feed(HEADER.pack(len(body)) + body)
    with pytest.raises(IPCProtocolError):
        dec.feed(encode(Heartbeat(1)))


def test_oversized_frame_is_refused_before_buffering() -> None:
    dec = Decoder(max_frame=100)
    with pytest.raises(IPCProtocolError, match="max 100"):
        dec.feed(HEADER.pack(101))
    with pytest.raises(IPCProtocolError):
        encode(JobReport({"x": "y" * 200}), max_frame=100)


def test_partial_frame_is_pending() -> None:
    dec = Decoder()
    data = encode(Heartbeat(1))
    assert dec.feed(data[:-1]) == []
    assert dec.pending_bytes == len(data) - 1


def test_codec_module_does_not_import_asyncio() -> None:
    code = "import sys, voxlane.worker.ipc; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

