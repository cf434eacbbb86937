"""A pool of per-session engine resources (decoders) that go back clean or not at all.

An engine whose per-session resource is slow to build (a pocketsphinx ``Decoder``: ~0.3 s)
keeps the idle ones here. The contract that makes reuse safe:

* :meth:`ResetPool.release` runs the engine's ``reset`` on the item *before* it is idle
  again. ``reset`` must leave the item as ``create`` would (no open utterance, no session's
  search or grammar, no session's buffers or adaptation) or raise.
* An item whose ``reset`` raises is **discarded** (``discard`` is called, its errors
  ignored) and never handed out again; the next :meth:`acquire` that finds no idle item
  builds a fresh one, so the pool replaces it lazily (no session pays for a rebuild it
  does not need). ``release`` itself never raises: a session's close always completes.
* At most ``max_idle`` items are kept; extras are discarded. A released item is never idle
  twice (releasing it again is ignored), so one decoder is never handed to two sessions.

Blocking and thread-safe: ``create`` and ``reset`` run in the caller's thread, outside the
pool's lock (they may take a while); the lock only guards the idle list and the counters.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["PoolStatistics", "ResetPool"]

_log = logging.getLogger("voxlane.gateway")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """Counters of one pool since it was built."""

    idle: int
    in_use: int
    created: int
    #: Items whose reset failed (or that found the pool full) and were dropped.
    discarded: int
    reset_failures: int


def _ignore(_item: object) -> None:
    return None


class ResetPool(Generic[_T]):
    """Idle items of one kind; each is reset on return, or discarded if reset fails."""

    def __init__(
        self,
        *,
        name: str,
        create: Callable[[], _T],
        reset: Callable[[_T], None],
        discard: Callable[[_T], None] = _ignore,
        max_idle: int = 8,
    ) -> None:
        if max_idle < 0:
            raise ValueError("max_idle must be >= 0")
        self._name = name
        self._create = create
        self._reset = reset
        self._discard = discard
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[_T] = []
        # By identity: items need not be hashable, and two equal decoders are two decoders.
        self._in_use: dict[int, _T] = {}
        self._created = 0
        self._discarded = 0
        self._reset_failures = 0

    def acquire(self) -> _T:
        """An idle item, or a fresh one from ``create`` (blocking; its errors propagate).

        The caller owns the item until it passes it to :meth:`release`, exactly once.
        """
        with self._lock:
            item = self._idle.pop() if self._idle else None
        if item is None:
            item = self._create()
            with self._lock:
                self._created += 1
        with self._lock:
            self._in_use[id(item)] = item
        return item

    def preload(self) -> None:
        """Make sure one item is idle (builds it if none is; blocking)."""
        with self._lock:
            if self._idle:
                return
        item = self._create()
        with self._lock:
            self._created += 1
            self._idle.append(item)

    def release(self, item: _T) -> bool:
        """Reset ``item`` and keep it idle; return False if it was discarded instead.

        Never raises. A reset that raises discards the item (logged at WARNING, without
        the session's data); so does a full pool. Releasing an item that is not in use
        (released twice, or never acquired here) does nothing and returns False.
        """
        with self._lock:
            if self._in_use.pop(id(item), None) is None:
                return False
        try:
            self._reset(item)
        except Exception as exc:
            _log.warning("%s: reset on return failed, discarded (%r)", self._name, exc)
            with self._lock:
                self._reset_failures += 1
            self._drop(item)
            return False
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(item)
                return True
        self._drop(item)
        return False

    def _drop(self, item: _T) -> None:
        with self._lock:
            self._discarded += 1
        try:
            self._discard(item)
        except Exception as exc:  # the item is gone either way
            _log.debug("%s: discard failed (%r)", self._name, exc)

    def statistics(self) -> PoolStatistics:
        with self._lock:
            return PoolStatistics(
                idle=len(self._idle),
                in_use=len(self._in_use),
                created=self._created,
                discarded=self._discarded,
                reset_failures=self._reset_failures,
            )
