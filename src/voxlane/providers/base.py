"""What every provider stream guarantees (DESIGN §5).

A stream is an async context manager and an async iterator. While open it holds one entry
in the resource ledger. ``aclose()`` is idempotent and always releases the connection —
also when it raises or is cancelled; ``abort()`` releases at once without any graceful
exchange (the session's teardown calls it when ``aclose()`` misses its deadline).

Subclasses implement ``_aclose_impl`` (graceful close; may be slow) and ``_abort_impl``
(sync hard release: close the socket, cancel internal tasks).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import ClassVar

from voxlane.aio.ledger import LEDGER, LedgerEntry, ResourceLedger


class ProviderStream:
    kind: ClassVar[str] = "stream"

    def __init__(self, *, label: str, ledger: ResourceLedger | None = None) -> None:
        self.label = label
        self._ledger = ledger or LEDGER
        self._entry: LedgerEntry | None = None
        self._closed = False
        self.release_deadline: float | None = None
        """Loop time the session's close plan needs this stream released by (set by the
        teardown before ``aclose``); a graceful close should not plan past it."""

    # -- ledger -------------------------------------------------------------------------
    def _mark_open(self) -> None:
        """Record the connection as open (call when connected; again after a reconnect)."""
        if self._entry is None or self._entry.released:
            self._entry = self._ledger.open(self.kind, self.label)

    def _note_reconnect(self, action: str) -> None:
        """Count a reconnect of this stream by its class (``retry``, ``idle``)."""
        self._ledger.note_reconnect(self.kind, action)

    def _mark_released(self) -> None:
        if self._entry is not None:
            self._entry.release()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- closing ------------------------------------------------------------------------
    def set_release_deadline(self, deadline: float) -> None:
        self.release_deadline = deadline

    def close_deadline(self, now: float, timeout: float) -> float:
        """When a graceful close starting ``now`` must be done: its own ``timeout``, or the
        release deadline the session's teardown gave, whichever comes first."""
        own = now + timeout
        return own if self.release_deadline is None else min(own, self.release_deadline)

    async def aclose(self) -> None:
        """Close gracefully if possible; always release. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._aclose_impl()
        except asyncio.CancelledError:
            self._abort_quietly()
            raise
        except BaseException:
            self._abort_quietly()
            raise
        finally:
            self._mark_released()

    def abort(self) -> None:
        """Release now, without a graceful exchange. Never blocks, never raises."""
        self._closed = True
        self._abort_quietly()
        self._mark_released()

    def _abort_quietly(self) -> None:
        try:
            self._abort_impl()
        except Exception:  # abort's contract: never raise
            pass

    async def _aclose_impl(self) -> None:
        return None

    def _abort_impl(self) -> None:
        return None

    async def __aenter__(self) -> ProviderStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
