"""The wire codec: pure, table-driven, no sockets."""

from __future__ import annotations

import json

import pytest

from voxlane.gateway import protocol as p

CLIENT_MESSAGES: list[p.ClientMessage] = [
    p.SessionCreate(),
    p.SessionCreate(settings=p.SessionSettings(sample_rate=48000, phrases=("hello world",))),
    p.SessionFinalize(),
    p.SessionClose(),
]

SERVER_EVENTS: list[p.ServerEvent] = [
    p.SessionCreated("stt_1"),
    p.StartOfSpeech(),
    p.InterimTranscript("hel"),
    p.FinalTranscript("hello", 0.25, 1.5),
    p.EndOfSpeech(),
    p.SessionFinalized(),
    p.SessionClosed(),
    p.error_event(p.ErrorCode.IDLE_TIMEOUT),
]


@pytest.mark.parametrize("msg", CLIENT_MESSAGES, ids=lambda m: m.type)
def test_client_messages_round_trip(msg: p.ClientMessage) -> None:
    assert p.parse_client_text(p.encode_client_message(msg)) == msg


@pytest.mark.parametrize("evt", SERVER_EVENTS, ids=lambda e: e.type)
def test_server_events_round_trip(evt: p.ServerEvent) -> None:
    assert p.parse_server_event(p.encode_server_event(evt)) == evt


def test_idle_error_is_exactly_the_documented_object() -> None:
    assert json.loads(p.encode_server_event(p.error_event(p.ErrorCode.IDLE_TIMEOUT))) == {
        "type": "error",
        "code": 2007,
        "message": "session closed due to inactivity",
        "retryable": True,
    }


def test_settings_defaults_and_extra_keys_ignored() -> None:
    msg = p.parse_client_text('{"type":"session.create","settings":{"future":1},"x":2}')
    assert msg == p.SessionCreate()
    assert p.parse_client_text('{"type":"session.create"}') == p.SessionCreate()


BAD_CLIENT_TEXT = [
    ("not json", p.ErrorCode.MALFORMED_JSON),
    ("[1,2]", p.ErrorCode.MALFORMED_JSON),
    ('"session.create"', p.ErrorCode.MALFORMED_JSON),
    ("{}", p.ErrorCode.UNKNOWN_MESSAGE_TYPE),
    ('{"type":"session.explode"}', p.ErrorCode.UNKNOWN_MESSAGE_TYPE),
    ('{"type":7}', p.ErrorCode.UNKNOWN_MESSAGE_TYPE),
    ('{"type":"session.create","settings":3}', p.ErrorCode.INVALID_MESSAGE),
    ('{"type":"session.create","settings":{"sample_rate":"16000"}}', p.ErrorCode.INVALID_MESSAGE),
    ('{"type":"session.create","settings":{"sample_rate":true}}', p.ErrorCode.INVALID_MESSAGE),
    ('{"type":"session.create","settings":{"phrases":[1]}}', p.ErrorCode.INVALID_MESSAGE),
    (
        '{"type":"session.create","settings":{"sample_rate":44100}}',
        p.ErrorCode.UNSUPPORTED_SETTINGS,
    ),
    ('{"type":"session.create","settings":{"encoding":"opus"}}', p.ErrorCode.UNSUPPORTED_SETTINGS),
    ('{"type":"session.create","settings":{"language":"fr"}}', p.ErrorCode.UNSUPPORTED_SETTINGS),
    ('{"type":"session.create","settings":{"phrases":[]}}', p.ErrorCode.UNSUPPORTED_SETTINGS),
    ('{"type":"session.create","settings":{"phrases":["  "]}}', p.ErrorCode.UNSUPPORTED_SETTINGS),
]


@pytest.mark.parametrize(("text", "code"), BAD_CLIENT_TEXT)
def test_bad_client_text_raises_its_code(text: str, code: p.ErrorCode) -> None:
    with pytest.raises(p.ProtocolViolation) as info:
        p.parse_client_text(text)
    assert info.value.code is code


@pytest.mark.parametrize("rate", sorted(p.SUPPORTED_SAMPLE_RATES))
def test_every_supported_rate_validates(rate: int) -> None:
    p.SessionSettings(sample_rate=rate).validate()


def test_audio_frame_checks() -> None:
    p.check_audio_frame(b"\x00\x01" * 320)
    p.check_audio_frame(b"")
    with pytest.raises(p.ProtocolViolation) as odd:
        p.check_audio_frame(b"\x00" * 641)
    assert odd.value.code is p.ErrorCode.INVALID_AUDIO_FRAME
    with pytest.raises(p.ProtocolViolation) as big:
        p.check_audio_frame(b"\x00" * 1026, max_frame_bytes=1024)
    assert big.value.code is p.ErrorCode.FRAME_TOO_LARGE


def test_every_code_is_documented_and_consistent() -> None:
    for code in p.ErrorCode:
        info = p.error_info(code)
        assert info.message
        # A fatal error names the close code the server uses; a non-fatal one closes nothing.
        assert (info.close_code != 0) == info.fatal, code
    assert p.error_info(p.ErrorCode.IDLE_TIMEOUT).retryable
    assert p.error_info(p.ErrorCode.SERVER_BUSY).close_code == 1000


BAD_SERVER_TEXT = [
    ("{", p.ErrorCode.MALFORMED_JSON),
    ('{"type":"no.such.event"}', p.ErrorCode.UNKNOWN_MESSAGE_TYPE),
    ('{"type":"final_transcript","text":42,"start_s":0,"end_s":1}', p.ErrorCode.INVALID_MESSAGE),
    ('{"type":"final_transcript","text":"a","start_s":"x","end_s":1}', p.ErrorCode.INVALID_MESSAGE),
    ('{"type":"error","code":2007,"message":"m"}', p.ErrorCode.INVALID_MESSAGE),
    ('{"type":"error","code":true,"message":"m","retryable":true}', p.ErrorCode.INVALID_MESSAGE),
    ('{"type":"session.created"}', p.ErrorCode.INVALID_MESSAGE),
]


@pytest.mark.parametrize(("text", "code"), BAD_SERVER_TEXT)
def test_bad_server_text_raises_its_code(text: str, code: p.ErrorCode) -> None:
    with pytest.raises(p.ProtocolViolation) as info:
        p.parse_server_event(text)
    assert info.value.code is code


def test_protocol_module_is_pure() -> None:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(p))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert not imported & {"asyncio", "socket", "websockets", "threading", "time"}
