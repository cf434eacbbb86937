"""Test-only fault injection for the gateway server.

Pass ``start_gateway(config, faults=FaultPlan(...))``. Each field is off by default; the
plan is immutable and shared by every connection of the server. Used by the tests of the
gateway itself and of its client (reconnect, idle recycling, garbage handling). The CLI
accepts a hidden ``--fault KEY=VALUE`` for manual experiments; it is not a product feature.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["FaultPlan", "parse_fault"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    """What the server does wrong, on purpose.

    * ``drop_after_frames``: abort the TCP connection (no close frame, no event) right
      after receiving that many audio frames on a connection.
    * ``response_delay_s``: sleep this long before every event the server sends.
    * ``early_idle_s``: send error 2007 and close this many seconds after session.create,
      whatever audio arrives (a provider that recycles sessions early).
    * ``refuse_connections``: answer every handshake with HTTP 503.
    * ``send_garbage``: right after ``session.created``, send a non-JSON text frame, an
      event of unknown type and an event with a wrongly typed field (the session then
      goes on normally).
    """

    drop_after_frames: int | None = None
    response_delay_s: float = 0.0
    early_idle_s: float | None = None
    refuse_connections: bool = False
    send_garbage: bool = False


#: The text frames sent by ``send_garbage``, in order.
GARBAGE_FRAMES: tuple[str, ...] = (
    "\x00this is not json{",
    '{"type":"no.such.event"}',
    '{"type":"final_transcript","text":42,"start_s":"x","end_s":null}',
)


def parse_fault(spec: str, plan: FaultPlan | None = None) -> FaultPlan:
    """Parse ``KEY=VALUE`` (a FaultPlan field) onto ``plan``; raise ValueError if bad."""
    key, sep, value = spec.partition("=")
    kinds = {f.name: f for f in fields(FaultPlan)}
    if not sep or key not in kinds:
        raise ValueError(f"bad fault {spec!r}; use one of {sorted(kinds)}=VALUE")
    current = plan or FaultPlan()
    parsed: object
    if key in ("refuse_connections", "send_garbage"):
        parsed = value.lower() in ("1", "true", "yes")
    elif key == "drop_after_frames":
        parsed = int(value)
    else:
        parsed = float(value)
    values = {f: getattr(current, f) for f in kinds}
    values[key] = parsed
    return FaultPlan(**values)
