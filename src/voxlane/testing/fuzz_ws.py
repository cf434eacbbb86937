"""Fuzzing a running voxlane gateway's websocket endpoints, ``/v1/stt`` and ``/v1/tts``.

    report = await run_ws_campaign("ws://127.0.0.1:8790", seed=1, cases=500, api_key="KEY")

Only a URL is needed: this module speaks the protocol of ``docs/gateway-protocol.md`` by
itself (it does not import ``voxlane.gateway``), so it fuzzes any running gateway.

Case ``i`` is a pure function of ``(seed, i)`` (:func:`ws_case`): an endpoint and a script
of 1-6 frames sent back to back on a fresh connection, drawn from valid messages,
byte-mutated ones (:class:`voxlane.testing.fuzz.Mutator`), JSON-structure mutations (wrong
types, huge values, missing and extra fields, deep nesting, near-miss types, duplicate
keys), garbage and invalid-UTF-8 text, and odd-length, truncated, oversized or garbage
binary frames. On ``/v1/stt`` most scripts open a session first, so audio reaches the
engine. A script then ends with a *probe* (``{"type":"fuzz.probe.I"}``, answered by error
2002 naming it; ``cancel`` first on ``/v1/tts``) and ``session.close``, or (one case in
twelve) with a hard TCP abort. Cases run ``concurrency`` at a time.

Invariants (each broken one is a :class:`~voxlane.testing.fuzz.FuzzFailure`):

1. every server text frame is a JSON object of a documented event type with well-typed
   fields; errors carry a documented code with its documented ``retryable``; binary frames
   come only on ``/v1/tts``, in whole PCM16 samples;
2. every frame the protocol must reject (not a JSON object, unknown type, binary on
   ``/v1/tts``, odd-length audio on ``/v1/stt``) gets an error event before the probe's
   answer (unless the server ended the connection first);
3. every connection ends properly: the probe is answered and ``session.close`` gets
   ``session.closed`` then close 1000; or the server closed earlier with a close code and a
   non-empty reason that match its last event (``session.closed`` → 1000, a fatal error →
   its documented code), or with websockets' own 1007/1009 for invalid UTF-8 or a frame
   past its size limit; never a TCP drop without a close frame;
4. nothing waits forever: no answer within ``answer_timeout_s`` is a failure;
5. between batches (every ``health_every`` cases) and at the end, a valid client is served
   on both endpoints.

What only the server side can see (no ERROR record or traceback in its log, no connection
left open) is the caller's to check: the gateway's tests read its log and statistics,
``bench/fuzz.py`` reads the gateway process's stderr.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close

from voxlane.testing.fuzz import FuzzFailure, FuzzReport, Mutator

__all__ = ["WsCase", "WsFrame", "run_ws_campaign", "ws_case"]

STT, TTS = "stt", "tts"
_PATHS = {STT: "/v1/stt", TTS: "/v1/tts"}

#: Documented error codes: (retryable, close code after it; 0 = the connection goes on).
ERRORS: dict[int, tuple[bool, int]] = {
    2001: (False, 0),
    2002: (False, 0),
    2003: (False, 0),
    2004: (False, 0),
    2005: (False, 0),
    2006: (False, 0),
    2007: (True, 1000),
    2008: (True, 1000),
    2009: (False, 0),
    2010: (False, 1009),
    2011: (True, 1011),
    2012: (True, 1013),
    2013: (True, 1011),
    2014: (True, 1008),
}
#: On ``/v1/tts`` every error is non-fatal except these (docs §8).
_TTS_FATAL = frozenset({2007, 2013, 2014})
_CLIENT_TYPES = {
    STT: frozenset({"session.create", "session.finalize", "session.close"}),
    TTS: frozenset({"synthesize", "cancel", "session.close"}),
}
#: Server events and their required fields (name -> JSON type).
_NUM = (int, float)
_EVENTS: dict[str, dict[str, dict[str, Any]]] = {
    STT: {
        "session.created": {"session_id": str},
        "start_of_speech": {},
        "interim_transcript": {"text": str},
        "final_transcript": {"text": str, "start_s": _NUM, "end_s": _NUM},
        "end_of_speech": {},
        "session.finalized": {},
        "session.closed": {},
        "error": {"code": int, "message": str, "retryable": bool},
    },
    TTS: {
        "synthesis.started": {"id": str, "sample_rate": int},
        "synthesis.done": {"id": str},
        "synthesis.cancelled": {"id": str},
        "session.closed": {},
        "error": {"code": int, "message": str, "retryable": bool},
    },
}
#: Largest frame the default server accepts on /v1/stt, and websockets' own limit there.
STT_MAX_FRAME = 65536
WS_MAX_SIZE = 1 << 20


def _tone(samples: int, rate: int) -> bytes:
    return b"".join(
        int(8000 * math.sin(2 * math.pi * 440 * i / rate)).to_bytes(2, "little", signed=True)
        for i in range(samples)
    )


def _j(obj: Any) -> str:
    return json.dumps(obj)


_STT_TEXT = (
    _j({"type": "session.create"}),
    _j({"type": "session.create", "settings": {"sample_rate": 8000}}),
    _j({"type": "session.create", "settings": {"sample_rate": 48000, "language": "en"}}),
    _j({"type": "session.create", "settings": {"phrases": ["yes", "no", "talk to an agent"]}}),
    _j({"type": "session.finalize"}),
)
_STT_AUDIO = (b"\x00\x00" * 320, _tone(320, 16000), _tone(160, 8000), b"")
_TTS_TEXT = (
    _j({"type": "synthesize", "text": "Okay.", "voice": "espeak"}),
    _j({"type": "synthesize", "text": "Hello there.", "voice": "espeak", "id": "7"}),
    _j({"type": "synthesize", "text": "Yes.", "voice": "espeak", "sample_rate": 8000}),
    _j({"type": "synthesize", "text": "One, two.", "voice": "espeak", "sample_rate": 48000}),
    _j({"type": "cancel"}),
)
_CLOSE = _j({"type": "session.close"})
#: Values that break naive validation: wrong types, boundaries, huge and odd ones.
_WEIRD: tuple[Any, ...] = (
    None,
    True,
    False,
    -1,
    0,
    1,
    2**31,
    2**63,
    10**100,
    -0.0,
    1e308,
    float("nan"),
    float("inf"),
    "",
    "x",
    "16000",
    "\u0000",
    "\ud800",
    "é☃" * 50,
    "A" * 2001,
    [],
    [1, 2, 3],
    {},
    {"type": "session.create"},
)


@dataclass(frozen=True)
class WsFrame:
    """One frame of a script: ``data`` (``str`` text, ``bytes`` binary; ``raw_text``: bytes
    sent as a text frame, invalid UTF-8 included) and whether the server must reject it."""

    data: str | bytes
    bad: bool = False
    raw_text: bool = False

    def size(self) -> int:
        if isinstance(self.data, str):
            return len(self.data.encode("utf-8", "surrogatepass"))
        return len(self.data)


@dataclass(frozen=True)
class WsCase:
    index: int
    endpoint: str
    frames: tuple[WsFrame, ...]
    #: Drop TCP right after the script (no probe, no close).
    abort: bool = False

    def describe(self) -> bytes:
        """The script, one frame per line (text as is, binary as hex), for a report."""
        lines = [f"{self.endpoint}{' abort' if self.abort else ''}".encode()]
        for f in self.frames:
            if isinstance(f.data, str):
                lines.append(b"T " + f.data[:300].encode("utf-8", "backslashreplace"))
            else:
                lines.append((b"R " if f.raw_text else b"B ") + f.data[:150].hex().encode())
        return b"\n".join(lines)


def _bad_text(endpoint: str, text: str) -> bool:
    """Must the server answer this text frame with an error (2001 or 2002)?"""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return True
    kind = obj.get("type") if isinstance(obj, dict) else None
    return not (isinstance(kind, str) and kind in _CLIENT_TYPES[endpoint])


def _frame(endpoint: str, data: str | bytes, *, raw_text: bool = False) -> WsFrame:
    if raw_text:
        return WsFrame(data, bad=False, raw_text=True)  # 1007 at the websocket layer
    if isinstance(data, str):
        return WsFrame(data, bad=_bad_text(endpoint, data))
    bad = endpoint == TTS or (len(data) % 2 == 1 and len(data) <= STT_MAX_FRAME)
    return WsFrame(data, bad=bad)


def _mutate_json(rng: random.Random, text: str) -> str:
    """A structural mutation of one valid JSON message."""
    obj: dict[str, Any] = json.loads(text)
    target = obj
    if "settings" in obj and rng.random() < 0.6:
        target = obj["settings"] if isinstance(obj["settings"], dict) else obj
    op = rng.randrange(7)
    keys = [k for k in target if k != "voice"]  # no "voice" deletion: piper is slow
    if op == 0 and keys:
        del target[rng.choice(keys)]
    elif op in (1, 2) and keys:
        target[rng.choice(keys)] = rng.choice(_WEIRD)
    elif op == 3:
        target[rng.choice(["extra", "settings", "id", "text", "sample_rate", "phrases"])] = (
            rng.choice(_WEIRD)
        )
    elif op == 4:
        kind = str(obj.get("type", ""))
        obj["type"] = rng.choice([kind.upper(), kind + " ", kind[:-1], "", 7, None, [kind]])
    elif op == 5:
        depth = rng.choice([10, 100, 3000])
        return text[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
    else:
        return text[:-1] + ', "type": "' + rng.choice(sorted(_CLIENT_TYPES[STT])) + '"}'
    return json.dumps(obj, allow_nan=True)


def _binary(rng: random.Random, mutator: Mutator) -> bytes:
    audio = rng.choice(_STT_AUDIO)
    choice = rng.randrange(8)
    if choice == 0:
        return mutator.garbage(2048)
    if choice == 1:  # truncated to an odd length: not whole samples
        return (audio + b"\x00")[: rng.randrange(len(audio) + 1) | 1]
    if choice == 2:
        return audio + b"\x01"
    if choice == 3 and rng.random() < 0.3:  # oversized: past max_frame_bytes (2010)
        return b"\x00" * (STT_MAX_FRAME + 2 * rng.randrange(1, 512))
    if choice == 4 and rng.random() < 0.05:  # past websockets' own limit (1009)
        return b"\x00" * (WS_MAX_SIZE + 2)
    if choice == 5:
        return mutator.mutate(audio)
    return audio * rng.randint(1, 4)


def ws_case(seed: int, index: int) -> WsCase:
    """Case ``index`` of the campaign ``seed`` (see the module docstring)."""
    mutator = Mutator(seed * 1_000_003 + index)
    rng = mutator.rng
    endpoint = STT if rng.random() < 0.55 else TTS
    texts = _STT_TEXT if endpoint == STT else _TTS_TEXT
    mutator.corpus = [t.encode() for t in texts]
    frames: list[WsFrame] = []
    if endpoint == STT and rng.random() < 0.7:
        frames.append(_frame(endpoint, rng.choice(_STT_TEXT[:4])))
    for _ in range(rng.randint(1, 5)):
        kind = rng.randrange(10)
        if kind == 0:
            frames.append(_frame(endpoint, rng.choice(texts)))
        elif kind in (1, 2):
            raw = mutator.mutate(rng.choice(texts).encode())
            try:
                frames.append(_frame(endpoint, raw.decode("utf-8")))
            except UnicodeDecodeError:
                if rng.random() < 0.25:
                    frames.append(_frame(endpoint, raw, raw_text=True))
                else:
                    frames.append(_frame(endpoint, raw.decode("utf-8", "replace")))
        elif kind in (3, 4, 5):
            frames.append(_frame(endpoint, _mutate_json(rng, rng.choice(texts))))
        elif kind == 6:
            frames.append(_frame(endpoint, mutator.garbage(256).decode("latin-1")))
        elif kind == 7 and rng.random() < 0.1:
            frames.append(_frame(endpoint, _CLOSE))  # ends the connection early
        else:
            frames.append(_frame(endpoint, _binary(rng, mutator)))
    return WsCase(index, endpoint, tuple(frames), abort=rng.randrange(12) == 0)


# --------------------------------------------------------------------------- running


@dataclass
class _Reader:
    """Reads one connection to its end, checking invariant 1 on every frame."""

    endpoint: str
    probe: str | None = None
    errors: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    errors_before_probe: int = 0
    probe_answered: asyncio.Event = field(default_factory=asyncio.Event)
    closed: Close | None = None

    async def run(self, ws: ClientConnection) -> None:
        try:
            while True:
                self._check(await ws.recv())
        except ConnectionClosed as exc:
            self.closed = exc.rcvd  # None: no close frame came (TCP dropped)

    def _check(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            if self.endpoint == STT:
                self.errors.append(f"binary frame of {len(message)} bytes from /v1/stt")
            elif len(message) % 2:
                self.errors.append(f"odd-length audio frame ({len(message)} bytes)")
            return
        try:
            evt = json.loads(message)
        except ValueError:
            self.errors.append(f"server sent non-JSON text: {message[:80]!r}")
            return
        kind = evt.get("type") if isinstance(evt, dict) else None
        fields = _EVENTS[self.endpoint].get(kind) if isinstance(kind, str) else None
        if fields is None:
            self.errors.append(f"undocumented event: {message[:120]}")
            return
        for name, typ in fields.items():
            value = evt.get(name)
            if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
                self.errors.append(f"{kind}: bad field {name!r}: {message[:120]}")
                return
        self.events.append(evt)
        if kind == "error":
            self._check_error(evt)

    def _check_error(self, evt: dict[str, Any]) -> None:
        code = evt["code"]
        if code not in ERRORS:
            self.errors.append(f"undocumented error code {code}")
        elif evt["retryable"] is not ERRORS[code][0]:
            self.errors.append(f"error {code}: retryable={evt['retryable']}")
        if self.probe is not None and code == 2002 and self.probe in evt["message"]:
            self.probe_answered.set()
        elif not self.probe_answered.is_set():
            self.errors_before_probe += 1


def _close_problem(case: WsCase, reader: _Reader) -> str | None:
    """Invariant 3 for a connection the server closed; None if it closed properly."""
    close = reader.closed
    if close is None:
        return "the connection was dropped without a close frame"
    texts = [e for e in reader.events if e["type"] in ("error", "session.closed")]
    last = texts[-1] if texts else None
    if close.code in (1007, 1009) and close.reason:
        # websockets' own checks: invalid UTF-8 in a text frame, a frame past max_size.
        if close.code == 1007 and any(f.raw_text for f in case.frames):
            return None
        if close.code == 1009 and any(f.size() > WS_MAX_SIZE for f in case.frames):
            return None
    if not close.reason:
        return f"close {close.code} without a reason"
    if last is None:
        return f"close {close.code} ({close.reason}) with no session.closed or error before it"
    if last["type"] == "session.closed":
        expected = 1000
    else:
        code = last["code"]
        expected = ERRORS.get(code, (False, -1))[1]
        if case.endpoint == TTS and code not in _TTS_FATAL:
            expected = 0
    if close.code != expected:
        return f"close {close.code} ({close.reason}) after {json.dumps(last)[:120]}"
    return None


async def _wait(event: asyncio.Event, task: asyncio.Task[None], timeout: float) -> None:
    """Until ``event`` is set or ``task`` ends, at most ``timeout`` seconds."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


@dataclass(frozen=True, kw_only=True)
class _Settings:
    base: str
    headers: dict[str, str]
    answer_timeout_s: float


async def _open(settings: _Settings, endpoint: str) -> ClientConnection:
    return await connect(
        settings.base + _PATHS[endpoint],
        additional_headers=settings.headers,
        open_timeout=settings.answer_timeout_s,
        close_timeout=2.0,
        max_queue=None,  # the reader task keeps up; never make the server wait on us
        max_size=None,
    )


async def _run_case(settings: _Settings, case: WsCase) -> str | None:
    """Run one case; return what broke (one line) or None."""
    timeout = settings.answer_timeout_s
    try:
        ws = await _open(settings, case.endpoint)
    except InvalidStatus as exc:
        return f"handshake refused: HTTP {exc.response.status_code}"
    except (OSError, TimeoutError) as exc:
        return f"cannot connect: {exc!r}"
    probe = f"fuzz.probe.{case.index}"
    reader = _Reader(case.endpoint, probe=None if case.abort else probe)
    task = asyncio.create_task(reader.run(ws), name=f"fuzz-ws-reader-{case.index}")
    try:
        for frame in case.frames:
            data = frame.data
            try:
                async with asyncio.timeout(timeout):
                    await ws.send(data, text=True if frame.raw_text else None)
            except ConnectionClosed:
                break
            except TimeoutError:
                return "the server stopped reading (a send waited past the answer timeout)"
        if case.abort:
            ws.transport.abort()
            await asyncio.wait({task}, timeout=timeout)
            return "; ".join(reader.errors) or None
        try:
            if case.endpoint == TTS:
                await ws.send(_j({"type": "cancel"}))
            await ws.send(_j({"type": probe}))
        except ConnectionClosed:
            pass
        await _wait(reader.probe_answered, task, timeout)
        if reader.probe_answered.is_set():
            expected = sum(f.bad for f in case.frames)
            if reader.errors_before_probe < expected:
                got = reader.errors_before_probe
                return f"{expected} frame(s) to reject, {got} error(s) before the probe's answer"
            try:
                await ws.send(_CLOSE)
            except ConnectionClosed:
                pass
        elif not task.done():
            return f"no answer to the probe within {timeout:.0f}s"
        await asyncio.wait({task}, timeout=timeout)
        if not task.done():
            return f"session.close not answered by a close within {timeout:.0f}s"
        if reader.errors:
            return "; ".join(reader.errors[:3])
        return _close_problem(case, reader)
    finally:
        ws.transport.abort()
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)


async def _health(settings: _Settings) -> str | None:
    """Invariant 5: a valid STT session and a valid TTS request are served."""
    t = settings.answer_timeout_s
    try:
        async with asyncio.timeout(4 * t):
            ws = await _open(settings, STT)
            try:
                await ws.send(_j({"type": "session.create"}))
                if json.loads(await ws.recv())["type"] != "session.created":
                    return "health: /v1/stt did not create a session"
                for _ in range(10):
                    await ws.send(b"\x00\x00" * 320)
                await ws.send(_j({"type": "session.finalize"}))
                while json.loads(await ws.recv())["type"] != "session.finalized":
                    pass
                await ws.send(_CLOSE)
                while json.loads(await ws.recv())["type"] != "session.closed":
                    pass
            finally:
                await ws.close()
            ws = await _open(settings, TTS)
            try:
                await ws.send(_TTS_TEXT[0])
                audio = 0
                while True:
                    msg = await ws.recv()
                    if isinstance(msg, bytes):
                        audio += len(msg)
                    elif json.loads(msg)["type"] == "synthesis.done":
                        break
                    elif json.loads(msg)["type"] == "error":
                        return f"health: /v1/tts answered {msg[:120]}"
                if not audio:
                    return "health: /v1/tts spoke no audio"
            finally:
                await ws.close()
    except (TimeoutError, OSError, ConnectionClosed, InvalidStatus, ValueError, KeyError) as exc:
        return f"health: a valid client was not served: {exc!r}"
    return None


async def run_ws_campaign(
    url: str,
    seed: int,
    cases: int,
    *,
    api_key: str | None = None,
    concurrency: int = 4,
    health_every: int = 100,
    answer_timeout_s: float = 10.0,
    max_failures: int = 100,
    progress: Callable[[int], None] | None = None,
) -> FuzzReport:
    """Run cases ``0 .. cases-1`` of campaign ``seed`` against the gateway at ``url``
    (``ws://HOST:PORT``; a path is ignored). ``api_key``: sent as ``Authorization:
    Bearer``. Returns the report; ``report.cases`` is how many ran: the campaign stops
    early after a failed health check or ``max_failures`` failures. Every wait is bounded
    by ``answer_timeout_s``; the campaign leaves no connection of its own open.
    ``progress`` is called with the number of cases run after each batch."""
    base = url.rstrip("/")
    for path in _PATHS.values():
        base = base.removesuffix(path)
    settings = _Settings(
        base=base,
        headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
        answer_timeout_s=answer_timeout_s,
    )
    report = FuzzReport(target="gateway-ws", seed=seed)
    loop = asyncio.get_running_loop()
    started = loop.time()
    case_budget = 6 * answer_timeout_s

    def fail(index: int, data: bytes, error: str) -> None:
        if len(report.failures) < max_failures:
            report.failures.append(FuzzFailure(index, data, error))

    next_health = health_every
    for start in range(0, cases, concurrency):
        batch = [ws_case(seed, i) for i in range(start, min(cases, start + concurrency))]
        tasks = {
            asyncio.create_task(_run_case(settings, c), name=f"fuzz-ws-{c.index}"): c for c in batch
        }
        _, pending = await asyncio.wait(tasks, timeout=case_budget)
        for task, case in tasks.items():
            if task in pending:
                task.cancel()
                fail(case.index, case.describe(), f"case did not finish in {case_budget:.0f}s")
            elif task.exception() is not None:
                fail(case.index, case.describe(), f"campaign error: {task.exception()!r}")
            elif (problem := task.result()) is not None:
                fail(case.index, case.describe(), problem)
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        report.cases = start + len(batch)
        if progress is not None:
            progress(report.cases)
        if report.cases >= next_health or report.cases == cases:
            next_health += health_every
            if (problem := await _health(settings)) is not None:
                fail(report.cases - 1, b"health", problem)
                break  # a broken server makes every later case fail: stop here
        if len(report.failures) >= max_failures:
            break
    report.seconds = loop.time() - started
    return report
