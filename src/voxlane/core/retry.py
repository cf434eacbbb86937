"""Reconnect policy as pure pieces (STYLE §7): classify → backoff → budget.

A network provider's reconnect loop strings these together:

1. :func:`classify` a failure into RETRY (back off, spend budget), IDLE (the server closed an
   idle session: reconnect lazily on the next audio, spend nothing), FATAL (tell the session),
   or STOP (input ended or the session is closing: never reconnect — DESIGN I5).
2. :meth:`Backoff.delay` gives the wait before attempt *n* (exponential, capped, jittered;
   the random draw is passed in so the policy stays deterministic under test).
3. :class:`RetryBudget` allows at most ``max_attempts`` consecutive failed attempts and refills
   on proven progress: a final transcript, or a connection that stayed healthy for longer than
   ``healthy_after`` seconds.

The loop waits out each delay in full: only the end of input (or the stream's close) cuts
it short, and then the next decision is STOP. New audio never does (it waits in the
provider's bounded buffer for the next connection): a loop woken by every frame would spend
its whole budget within a few frame times of an outage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class FailureKind(Enum):
    REFUSED = "refused"  # connection refused / DNS / handshake rejected for load
    RESET = "reset"  # connection dropped by the peer or the network
    TIMEOUT = "timeout"  # connect or response deadline passed
    SERVER_BUSY = "server_busy"  # gateway 2008: max sessions reached
    IDLE_CLOSED = "idle_closed"  # gateway 2007: idle session closed by the server
    AUTH = "auth"  # credentials refused
    BAD_SETTINGS = "bad_settings"  # unsupported settings
    PROTOCOL = "protocol"  # the peer sent nonsense
    OTHER = "other"


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    message: str = ""
    code: int | None = None
    retryable: bool = True


class RetryAction(Enum):
    RETRY = "retry"
    IDLE = "idle"
    FATAL = "fatal"
    STOP = "stop"


_ALWAYS_FATAL = {FailureKind.AUTH, FailureKind.BAD_SETTINGS}
_TRANSIENT = {FailureKind.REFUSED, FailureKind.RESET, FailureKind.TIMEOUT, FailureKind.SERVER_BUSY}


def classify(failure: Failure, *, live: bool) -> RetryAction:
    """Decide what a failure means.

    ``live`` is False once input has ended or the session is closing; then nothing is
    reconnected, whatever the failure (an idle close after end of input is simply the end).
    """
    if not live:
        return RetryAction.STOP
    if failure.kind in _ALWAYS_FATAL:
        return RetryAction.FATAL
    if failure.kind is FailureKind.IDLE_CLOSED:
        return RetryAction.IDLE
    if failure.kind in _TRANSIENT:
        return RetryAction.RETRY
    return RetryAction.RETRY if failure.retryable else RetryAction.FATAL


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Exponential backoff with a cap and proportional jitter."""

    initial: float = 0.1
    multiplier: float = 2.0
    cap: float = 5.0
    jitter: float = 0.2

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based); ``rand`` in [0, 1)."""
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        base = min(self.cap, self.initial * self.multiplier ** (attempt - 1))
        spread = base * self.jitter
        return max(0.0, min(self.cap, base - spread + 2 * spread * rand))


@dataclass(kw_only=True)
class RetryBudget:
    """Consecutive failed attempts allowed; refilled by proven progress."""

    max_attempts: int = 3
    healthy_after: float = 5.0
    used: int = 0
    _connected_at: float | None = field(default=None, repr=False)

    def try_spend(self) -> bool:
        """Take one attempt from the budget. False when it is exhausted (give up: FATAL)."""
        if self.used >= self.max_attempts:
            return False
        self.used += 1
        return True

    def on_connected(self, now: float) -> None:
        self._connected_at = now

    def on_disconnected(self, now: float) -> None:
        """Refill if the connection that just ended had stayed healthy long enough."""
        if self._connected_at is not None and now - self._connected_at >= self.healthy_after:
            self.used = 0
        self._connected_at = None

    def check_healthy(self, now: float) -> None:
        """Call periodically while connected: a long healthy connection is progress."""
        if self._connected_at is not None and now - self._connected_at >= self.healthy_after:
            self.used = 0

    def on_progress(self) -> None:
        """A final transcript arrived: the provider works."""
        self.used = 0

    @property
    def remaining(self) -> int:
        return self.max_attempts - self.used
