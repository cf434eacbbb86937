"""Speech scheduling policy (pure): one speech at a time, highest priority first, then FIFO.

The asyncio layer asks :meth:`SpeechQueue.next_to_start` whenever something changed
(a speech was queued or finished) and starts what it is told to. Nothing here waits.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

PRIORITY_LOW = 0
PRIORITY_NORMAL = 5
PRIORITY_HIGH = 10


@dataclass
class SpeechQueue:
    """Which speech plays now and which come next.

    ``paused`` stops new speech from starting (drain and close); what is current keeps
    its slot until :meth:`finish` is called for it.
    """

    _heap: list[tuple[int, int, str]] = field(default_factory=list)
    _seq: int = 0
    current: str | None = None
    paused: bool = False

    def enqueue(self, speech_id: str, priority: int = PRIORITY_NORMAL) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (-priority, self._seq, speech_id))

    def remove(self, speech_id: str) -> bool:
        """Drop a queued speech (e.g. interrupted before it started). True if it was queued."""
        before = len(self._heap)
        self._heap = [item for item in self._heap if item[2] != speech_id]
        heapq.heapify(self._heap)
        return len(self._heap) != before

    def next_to_start(self) -> str | None:
        """The speech to start now, or None (one is playing, the queue is empty, or paused)."""
        if self.paused or self.current is not None or not self._heap:
            return None
        _, _, speech_id = heapq.heappop(self._heap)
        self.current = speech_id
        return speech_id

    def finish(self, speech_id: str) -> None:
        """The speech ended (played out, interrupted or failed)."""
        if self.current == speech_id:
            self.current = None
        else:
            self.remove(speech_id)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def clear(self) -> list[str]:
        """Remove every queued speech; return their ids (the current one is not included)."""
        ids = [item[2] for item in sorted(self._heap)]
        self._heap.clear()
        return ids

    @property
    def queued(self) -> list[str]:
        return [item[2] for item in sorted(self._heap)]

    def is_idle(self) -> bool:
        """Nothing playing and nothing queued: a drain is complete."""
        return self.current is None and not self._heap
