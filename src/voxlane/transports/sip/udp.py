"""The SIP signaling socket: an asyncio datagram endpoint driving :class:`SipEndpointCore`.

Everything SIP decides happens in the pure core; this module only carries it out:

* each datagram → ``core.receive_datagram(data, source, loop.time())``;
* after every input or command (:meth:`SipSignaling.pump`): send
  ``core.datagrams_to_send()``, hand ``core.events_received()`` to ``on_event``, and re-arm
  the single timer at ``core.next_deadline()`` (``loop.call_at``), which runs
  ``core.handle_timeout``.

The listener never dies on input: the core never raises, and anything raised past it (an
``on_event`` bug, a send error) is contained and counted in ``errors``. Nor does it ever
block the loop on a resolver: the core addresses every datagram to an IP literal, and
:meth:`SipSignaling.pump` drops (and counts in ``errors``) one that is not, rather than
let ``sendto`` look a hostname up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from voxlane.aio.clock import DEFAULT_CLOCK, Clock

from .addresses import ip_literal
from .common import Address
from .dialog import DialogNotification
from .endpoint import SipEndpointCore

__all__ = ["SipSignaling", "open_sip_signaling"]

log = logging.getLogger(__name__)

EventHandler = Callable[[DialogNotification], None]


class _SipProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.signaling: SipSignaling | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.signaling is not None:
            self.signaling.receive(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        if self.signaling is not None:
            self.signaling.send_errors += 1


class SipSignaling:
    """Owns the SIP UDP socket and the core's timer. Create with :func:`open_sip_signaling`,
    then construct the core with :attr:`local_address` and :meth:`attach` it.

    Commands to the core (``answer``/``reject``/``hangup``) go through :meth:`command`, which
    pumps afterwards so their datagrams leave at once.
    """

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _SipProtocol,
                 clock: Clock) -> None:
        self._transport = transport
        self._clock = clock
        self._core: SipEndpointCore | None = None
        self._on_event: EventHandler | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        self.errors = 0
        self.send_errors = 0
        host, port = transport.get_extra_info("sockname")[:2]
        self.local_address: Address = (str(host), int(port))
        protocol.signaling = self

    @property
    def core(self) -> SipEndpointCore:
        if self._core is None:
            raise RuntimeError("attach() a core first")
        return self._core

    def attach(self, core: SipEndpointCore, on_event: EventHandler) -> None:
        self._core, self._on_event = core, on_event

    def receive(self, data: bytes, source: Address) -> None:
        """One datagram from the socket. Never raises."""
        if self._closed or self._core is None:
            return
        self._core.receive_datagram(data, source, self._clock.now())
        self.pump()

    def command(self, action: Callable[[SipEndpointCore, float], None]) -> None:
        """Run ``action(core, now)`` then pump. Errors of the action propagate (the
        caller asked for something the dialog's state forbids); pumping always runs."""
        try:
            action(self.core, self._clock.now())
        finally:
            self.pump()

    def pump(self) -> None:
        """Send what the core queued, dispatch its events, re-arm the timer. Never raises."""
        if self._core is None:
            return
        try:
            for data, addr in self._core.datagrams_to_send():
                if self._closed:
                    continue
                if ip_literal(addr[0]) is None:  # sendto would resolve it, blocking the loop
                    self.errors += 1
                    log.error("SIP datagram to %r dropped: not an IP address", addr[0][:80])
                    continue
                self._transport.sendto(data, addr)
            if self._on_event is not None:
                for event in self._core.events_received():
                    try:
                        self._on_event(event)
                    except Exception:  # a handler bug must not take the listener down
                        self.errors += 1
                        log.exception("SIP event handler failed on %r", event)
            self._arm()
        except Exception:
            self.errors += 1
            log.exception("SIP pump failed")

    def _arm(self) -> None:
        deadline = None if self._closed or self._core is None else self._core.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        if self._closed or self._core is None:
            return
        try:
            self._core.handle_timeout(self._clock.now())
        except Exception:  # the core contains its own errors; this is belt and braces
            self.errors += 1
            log.exception("SIP timer failed")
        self.pump()

    def close(self) -> None:
        """Cancel the timer and close the socket. Idempotent; never blocks."""
        if self._closed:
            return
        self.pump()  # last datagrams (BYEs of a shutdown) still leave
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport.close()

    @property
    def closed(self) -> bool:
        return self._closed


async def open_sip_signaling(host: str, port: int, *,
                             clock: Clock = DEFAULT_CLOCK) -> SipSignaling:
    """Bind the SIP UDP socket (``port`` 0: ephemeral). Raises ``OSError``."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_SipProtocol,
                                                              local_addr=(host, port))
    return SipSignaling(transport, protocol, clock)
