"""Who may open a gateway connection: connection caps and failed-handshake throttling.

Pure decisions: no I/O, no asyncio, no clock (``now`` is passed in, in seconds of the
event loop's monotonic clock). The server asks:

1. :meth:`Admission.connect` — for every TCP connection, as it is accepted, before a byte
   is read: the caps per client address and for the whole server. Every connection counts
   from here until :meth:`Admission.release` (idempotent), which the server calls when
   the TCP connection is gone: one that never sends its HTTP request, or dribbles it,
   holds its place as long as it is open (at most the opening-handshake timeout), so idle
   sockets cannot pile up uncounted. Over a cap the connection is closed at once (no HTTP
   answer: the request has not been read, and writing to a peer that does not read is
   what a flood wants).
2. For each HTTP request (``process_request``): :meth:`Admission.throttled` — has this
   client address spent its failed-handshake budget? Then HTTP 429 with ``Retry-After``,
   *before* the key is even looked at, so a key cannot be guessed faster than the budget
   refills.
3. (route and key checks, in the server) — each 400/401/404 is a :meth:`Admission.failed`,
   which takes one token from the client's bucket.
4. :meth:`Admission.admit_tts` — a ``/v1/tts`` request takes one of the TTS places (HTTP
   503 when none is free); its ticket gives it back on release.

The failed-handshake budget is a token bucket per client address: ``burst`` tokens, one
more every ``1 / rate`` seconds. Buckets are kept for at most ``max_tracked_clients``
addresses (least recently failed dropped first, which only forgives that address), so many
source addresses cannot grow the table without bound.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "Admission",
    "AdmissionLimits",
    "AdmissionStatistics",
    "Refusal",
    "Refused",
    "Ticket",
    "TokenBucket",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionLimits:
    """Caps and the failed-handshake budget (see the module docstring). Raises ValueError
    for a value out of range, naming the field."""

    max_connections: int = 256
    max_connections_per_client: int = 32
    max_tts_connections: int = 8
    failed_handshake_burst: int = 10
    #: Tokens per second given back to a client's failed-handshake bucket.
    failed_handshake_rate: float = 1.0
    max_tracked_clients: int = 10_000

    def __post_init__(self) -> None:
        for name in (
            "max_connections",
            "max_connections_per_client",
            "max_tts_connections",
            "failed_handshake_burst",
            "max_tracked_clients",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        rate = self.failed_handshake_rate
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"failed_handshake_rate must be a number > 0, not {rate}")


class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``rate`` per second (pure)."""

    __slots__ = ("_at", "capacity", "rate", "tokens")

    def __init__(self, capacity: int, rate: float, now: float) -> None:
        self.capacity = float(capacity)
        self.rate = rate
        self.tokens = float(capacity)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
            self._at = now

    def available(self, now: float) -> bool:
        """At least one whole token is there."""
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> None:
        """Spend one token (the balance may go down to zero, never below)."""
        self._refill(now)
        self.tokens = max(0.0, self.tokens - 1.0)

    def seconds_until_token(self, now: float) -> float:
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity


class Refusal(enum.Enum):
    """Why a connection is refused."""

    THROTTLED = "throttled"  # too many failed handshakes from this address: HTTP 429
    TTS_FULL = "tts_full"  # max_tts_connections open on /v1/tts: HTTP 503
    # At TCP accept: closed at once, no HTTP answer.
    CLIENT_LIMIT = "client_limit"  # max_connections_per_client open from the address
    SERVER_FULL = "server_full"  # max_connections open in all

    @property
    def status(self) -> int | None:
        """The HTTP status of a refused request; None for a refusal at TCP accept."""
        return {Refusal.THROTTLED: 429, Refusal.TTS_FULL: 503}.get(self)


@dataclass(frozen=True, slots=True)
class Refused:
    """A refusal: its reason, the ``Retry-After`` seconds to send, and whether it is the
    first refusal of a throttling episode for this client (log it once, loudly)."""

    refusal: Refusal
    retry_after_s: int
    first: bool = True


@dataclass(eq=False, slots=True)
class Ticket:
    """One open TCP connection; hand it back with :meth:`Admission.release`."""

    client: str
    #: It holds one of the ``/v1/tts`` places (:meth:`Admission.admit_tts`).
    tts: bool = False
    released: bool = False


@dataclass(frozen=True, slots=True)
class AdmissionStatistics:
    #: Open TCP connections, whether or not their handshake finished.
    open_connections: int
    open_tts_connections: int
    #: Client addresses with at least one open connection.
    clients_connected: int
    #: Client addresses whose failed-handshake bucket is being tracked.
    clients_tracked: int
    #: Refusals of every kind (TCP accepts over a cap included).
    refused: int
    #: TCP connections closed at accept by a connection cap.
    refused_at_connect: int = 0


class _Client:
    __slots__ = ("bucket", "throttled")

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket
        # A refusal was reported since the bucket was last full: one report per episode,
        # however long a client keeps failing at the refill rate.
        self.throttled = False


class Admission:
    """The admission state of one server (pure; see the module docstring)."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._open: dict[str, int] = {}
        self._open_total = 0
        self._open_tts = 0
        self._refused = 0
        self._refused_at_connect = 0
        # Refusals already reported in the current episode: a refusal is "first" (logged
        # at WARNING) once per episode. A client's episode ends when its last connection
        # closes; a server-wide one when the count is back to half its cap. (Ending it at
        # the next admission would log a WARNING per freed place under a flood.)
        self._capped: set[str] = set()
        self._full: set[Refusal] = set()

    def throttled(self, client: str, now: float) -> Refused | None:
        """A refusal if ``client`` has no failed-handshake token left, else None."""
        state = self._clients.get(client)
        if state is None:
            return None
        if state.bucket.available(now):
            if state.bucket.full(now):
                del self._clients[client]  # forgiven: the next episode is reported anew
            return None
        self._refused += 1
        first = not state.throttled
        state.throttled = True
        retry = max(1, math.ceil(state.bucket.seconds_until_token(now)))
        return Refused(Refusal.THROTTLED, retry, first)

    def failed(self, client: str, now: float) -> None:
        """A handshake from ``client`` failed (bad key, bad header, unknown path)."""
        state = self._clients.get(client)
        if state is None:
            limits = self.limits
            bucket = TokenBucket(limits.failed_handshake_burst, limits.failed_handshake_rate, now)
            state = self._clients[client] = _Client(bucket)
            while len(self._clients) > limits.max_tracked_clients:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
        state.bucket.take(now)

    def connect(self, client: str) -> Ticket | Refused:
        """Count one more open TCP connection of ``client``, or refuse it (a cap is
        reached: the caller closes it at once)."""
        limits = self.limits
        refusal: Refusal | None = None
        if self._open.get(client, 0) >= limits.max_connections_per_client:
            refusal = Refusal.CLIENT_LIMIT
        elif self._open_total >= limits.max_connections:
            refusal = Refusal.SERVER_FULL
        if refusal is not None:
            self._refused_at_connect += 1
            return self._refuse(refusal, client)
        self._open[client] = self._open.get(client, 0) + 1
        self._open_total += 1
        return Ticket(client)

    def admit_tts(self, ticket: Ticket) -> Refused | None:
        """Give ``ticket``'s connection one of the ``/v1/tts`` places, or refuse it."""
        if ticket.released or ticket.tts:
            return None
        if self._open_tts >= self.limits.max_tts_connections:
            return self._refuse(Refusal.TTS_FULL, ticket.client)
        ticket.tts = True
        self._open_tts += 1
        return None

    def _refuse(self, refusal: Refusal, client: str) -> Refused:
        self._refused += 1
        if refusal is Refusal.CLIENT_LIMIT:
            first = client not in self._capped
            self._capped.add(client)
        else:
            first = refusal not in self._full
            self._full.add(refusal)
        return Refused(refusal, 1, first)

    def release(self, ticket: Ticket) -> None:
        """Give a connection's places back (idempotent)."""
        if ticket.released:
            return
        ticket.released = True
        left = self._open[ticket.client] - 1
        if left:
            self._open[ticket.client] = left
        else:
            del self._open[ticket.client]
            self._capped.discard(ticket.client)
        self._open_total -= 1
        self._open_tts -= ticket.tts
        if self._open_total <= self.limits.max_connections // 2:
            self._full.discard(Refusal.SERVER_FULL)
        if self._open_tts <= self.limits.max_tts_connections // 2:
            self._full.discard(Refusal.TTS_FULL)

    def statistics(self) -> AdmissionStatistics:
        return AdmissionStatistics(
            open_connections=self._open_total,
            open_tts_connections=self._open_tts,
            clients_connected=len(self._open),
            clients_tracked=len(self._clients),
            refused=self._refused,
            refused_at_connect=self._refused_at_connect,
        )
