"""The pure connection rules: every (state, input) decision, as a table."""

from __future__ import annotations

import json

import pytest

from voxlane.gateway import protocol as p
from voxlane.gateway import stt_rules as r
from voxlane.gateway.stt_rules import State

W = State.AWAITING_CREATE
A = State.ACTIVE
MAX = 4096
CREATE = json.dumps({"type": "session.create"})
FINALIZE = json.dumps({"type": "session.finalize"})
CLOSE = json.dumps({"type": "session.close"})


def code(decision: r.Decision) -> int | None:
    if decision.reply is not None:
        return decision.reply.code
    if decision.close is not None and decision.close.error is not None:
        return int(decision.close.error)
    return None


TEXT_TABLE = [
    # state, text, label, error code, create?, enqueue, close reason
    (W, CREATE, "session.create", None, True, None, None),
    (A, CREATE, "session.create", 2006, False, None, None),
    (W, FINALIZE, "session.finalize", 2004, False, None, None),
    (A, FINALIZE, "session.finalize", None, False, r.FINALIZE, None),
    (W, CLOSE, "session.close", None, False, None, "client_close"),
    (A, CLOSE, "session.close", None, False, r.DRAIN_AND_CLOSE, "client_close"),
    (W, "{oops", "invalid", 2001, False, None, None),
    (A, '{"type":"nope"}', "invalid", 2002, False, None, None),
    (W, '{"type":"session.create","settings":[]}', "invalid", 2003, False, None, None),
    (W, '{"type":"session.create","settings":{"sample_rate":11025}}', "invalid", 2005,
     False, None, None),
    (A, " " * (MAX + 1), "invalid", 2010, False, None, "frame_too_large"),
    (State.CLOSING, CREATE, "ignored", None, False, None, None),
    (State.CLOSED, CLOSE, "ignored", None, False, None, None),
]


@pytest.mark.parametrize(
    ("state", "text", "label", "err", "create", "enqueue", "close"), TEXT_TABLE
)
def test_text_decisions(
    state: State, text: str, label: str, err: int | None, create: bool,
    enqueue: str | None, close: str | None,
) -> None:
    d = r.decide_text(state, text, max_frame_bytes=MAX)
    assert d.label == label
    assert code(d) == err
    assert (d.create is not None) == create
    assert d.enqueue == enqueue
    assert (d.close.reason if d.close else None) == close
    assert not d.restart_idle


AUDIO_TABLE = [
    # state, frame, error code, restart idle, enqueued, close reason
    (A, b"\x01\x00" * 320, None, True, b"\x01\x00" * 320, None),
    (A, b"", None, True, None, None),
    (A, b"\x00" * 641, 2009, False, None, None),
    (W, b"\x00" * 640, 2004, False, None, None),
    (W, b"\x00" * 641, 2009, False, None, None),
    (A, b"\x00" * (MAX + 2), 2010, False, None, "frame_too_large"),
    (W, b"\x00" * (MAX + 2), 2010, False, None, "frame_too_large"),
    (State.CLOSING, b"\x00" * 640, None, False, None, None),
]


@pytest.mark.parametrize(("state", "data", "err", "restart", "enqueue", "close"), AUDIO_TABLE)
def test_audio_decisions(
    state: State, data: bytes, err: int | None, restart: bool, enqueue: bytes | None,
    close: str | None,
) -> None:
    d = r.decide_audio(state, data, max_frame_bytes=MAX)
    assert code(d) == err
    assert d.restart_idle is restart
    assert d.enqueue == enqueue
    assert (d.close.reason if d.close else None) == close


def test_every_fatal_close_order_uses_a_fatal_code() -> None:
    for order in (r.IDLE, r.BUSY, r.ENGINE_FAILED, r.OVERLOADED, r.INTERNAL):
        assert order.error is not None and p.error_info(order.error).fatal
    for order in (r.CLIENT_CLOSE, r.SHUTDOWN, r.PEER_GONE):
        assert order.error is None


@pytest.mark.parametrize(("current", "new"), [(s, n) for s in State for n in State])
def test_transition_table(current: State, new: State) -> None:
    if new in r.TRANSITIONS[current]:
        assert r.check_transition(current, new) is new
    else:
        with pytest.raises(r.IllegalTransition, match=f"{current.name} -> {new.name}"):
            r.check_transition(current, new)
