"""The resource ledger: every open provider connection, counted by session (DESIGN I7).

Provider streams call :meth:`ResourceLedger.open` when they connect and release the entry
when they close (or abort). A session's report ends with the number of its connections still
open — the number voxlane promises is 0. The session id is taken from a context variable set
by the session, so streams opened by any of its tasks are counted under it.
"""

from __future__ import annotations

import itertools
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field

current_session_id: ContextVar[str | None] = ContextVar("voxlane_session_id", default=None)


@dataclass
class LedgerEntry:
    """One open connection. ``release()`` is idempotent."""

    ledger: ResourceLedger
    entry_id: int
    kind: str
    label: str
    session_id: str | None
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.ledger._release(self)


class ResourceLedger:
    def __init__(self) -> None:
        self._open: dict[int, LedgerEntry] = {}
        self._ids = itertools.count(1)
        self.opened_total = 0
        self.reconnects: Counter[str] = Counter()
        """Provider reconnects in this process, by class (``retry``, ``idle``)."""

    def note_reconnect(self, kind: str, action: str) -> None:
        """A ``kind`` provider (e.g. ``"stt"``) reconnects; ``action`` is its class."""
        self.reconnects[f"{kind}:{action}"] += 1

    def open(self, kind: str, label: str, *, session_id: str | None = None) -> LedgerEntry:
        """Record a connection as open. ``session_id`` defaults to the current session's."""
        sid = session_id if session_id is not None else current_session_id.get()
        entry = LedgerEntry(self, next(self._ids), kind, label, sid)
        self._open[entry.entry_id] = entry
        self.opened_total += 1
        return entry

    def _release(self, entry: LedgerEntry) -> None:
        self._open.pop(entry.entry_id, None)

    def count_open(self, session_id: str | None = None) -> int:
        """Open connections of ``session_id`` (all sessions when None)."""
        if session_id is None:
            return len(self._open)
        return sum(1 for e in self._open.values() if e.session_id == session_id)

    def open_entries(self, session_id: str | None = None) -> list[LedgerEntry]:
        return [e for e in self._open.values() if session_id is None or e.session_id == session_id]


LEDGER = ResourceLedger()
"""The process-wide ledger every provider registers in."""
