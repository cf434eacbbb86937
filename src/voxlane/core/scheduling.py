"""Speech scheduling policy (pure): one speech at a time, highest priority first, then FIFO.

The asyncio layer asks :meth:`SpeechQueue.next_to_start` whenever something changed
(a speech was queued or finished) and starts what it is told to. Nothing here waits.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

PRIORITY_LOW = 0
PRIORITY_NORMAL = 5
PRIORITY_HIGH = 10


@dataclass
class SpeechQueue:
    """Which speech plays now and which come next.

    ``paused`` stops new speech from starting (drain and close); what is current keeps
    its slot until :meth:`finish` is called for it.

    A speech requested from inside the current speech (a tool of its reply saying "one
    moment") is *nested*: it plays while its parent waits for its tools, one at a time and
    in order, ahead of everything queued — so a tool can await it without deadlocking.
    """

    _heap: list[tuple[int, int, str]] = field(default_factory=list)
    _seq: int = 0
    _nested: deque[str] = field(default_factory=deque)
    current: str | None = None
    nested_current: str | None = None
    """The nested speech playing now (its parent is ``current``)."""
    paused: bool = False

    def enqueue(self, speech_id: str, priority: int = PRIORITY_NORMAL) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (-priority, self._seq, speech_id))

    def enqueue_nested(self, speech_id: str, parent: str) -> bool:
        """Queue a speech inside ``parent``. False (nothing queued) if ``parent`` is not the
        current speech: the caller queues it normally instead."""
        if parent != self.current:
            return False
        self._nested.append(speech_id)
        return True

    def remove(self, speech_id: str) -> bool:
        """Drop a queued speech (e.g. interrupted before it started). True if it was queued."""
        if speech_id in self._nested:
            self._nested.remove(speech_id)
            return True
        before = len(self._heap)
        self._heap = [item for item in self._heap if item[2] != speech_id]
        heapq.heapify(self._heap)
        return len(self._heap) != before

    def next_to_start(self) -> str | None:
        """The speech to start now, or None (one is playing, the queue is empty, or paused)."""
        if self.paused:
            return None
        if self.current is not None:
            if self.nested_current is None and self._nested:
                self.nested_current = self._nested.popleft()
                return self.nested_current
            return None
        if not self._heap or self.nested_current is not None:
            return None  # (a nested speech still ending after its parent holds the slot)
        _, _, speech_id = heapq.heappop(self._heap)
        self.current = speech_id
        return speech_id

    def finish(self, speech_id: str) -> None:
        """The speech ended (played out, interrupted or failed)."""
        if self.nested_current == speech_id:
            self.nested_current = None
        elif self.current == speech_id:
            self.current = None
            self._nested.clear()  # the activity finishes its nested speech with it
        else:
            self.remove(speech_id)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def clear(self) -> list[str]:
        """Remove every queued speech; return their ids (the current one is not included)."""
        ids = [*self._nested, *(item[2] for item in sorted(self._heap))]
        self._heap.clear()
        self._nested.clear()
        return ids

    @property
    def queued(self) -> list[str]:
        return [*self._nested, *(item[2] for item in sorted(self._heap))]

    def is_idle(self) -> bool:
        """Nothing playing and nothing queued: a drain is complete."""
        return self.current is None and self.nested_current is None and not self._heap
