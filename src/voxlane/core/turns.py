"""User-turn tracking (pure): when the user speaks, what they said, when their turn is over.

Inputs are speech events with ``now``; outputs are decisions the activity carries out:
``on_speech_start`` says whether agent speech should be interrupted (barge-in), ``poll``
returns the text of a completed turn once the endpoint delay has passed.

A turn completes when the user is not speaking, some final text is pending, and at least
``min_endpoint_delay`` seconds have passed since the end of speech. A final transcript that
arrives after that delay completes the turn at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class UserState(Enum):
    LISTENING = "listening"
    SPEAKING = "speaking"


@dataclass(kw_only=True)
class TurnTracker:
    min_endpoint_delay: float = 0.5
    state: UserState = UserState.LISTENING
    _finals: list[str] = field(default_factory=list)
    _interim: str = ""
    _speech_ended_at: float | None = None

    def on_speech_start(self, now: float) -> bool:
        """The user started speaking. Returns True if this is a new start (barge-in moment)."""
        self._speech_ended_at = None
        if self.state is UserState.SPEAKING:
            return False
        self.state = UserState.SPEAKING
        return True

    def on_speech_end(self, now: float) -> None:
        if self.state is UserState.SPEAKING:
            self.state = UserState.LISTENING
            self._speech_ended_at = now

    def on_interim(self, text: str) -> None:
        self._interim = text

    def on_final(self, text: str, now: float) -> None:
        self._interim = ""
        if text.strip():
            self._finals.append(text.strip())
        if self.state is UserState.LISTENING and self._speech_ended_at is None:
            # A final with no speech end seen (STT without end events): endpoint from now.
            self._speech_ended_at = now

    def next_deadline(self) -> float | None:
        """When :meth:`poll` may next return a turn (None: nothing is pending)."""
        if self.state is UserState.SPEAKING or not self._finals or self._speech_ended_at is None:
            return None
        return self._speech_ended_at + self.min_endpoint_delay

    def poll(self, now: float) -> str | None:
        """The completed turn's text if the turn is over at ``now``; it is then consumed."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return None
        return self._take()

    @property
    def mid_utterance(self) -> bool:
        """Speech is in progress or heard but not finalized: a trailing final may come."""
        return self.state is UserState.SPEAKING or bool(self._interim)

    @property
    def has_pending(self) -> bool:
        return bool(self._finals or self._interim)

    def flush(self) -> str | None:
        """At close: whatever the user said and was not committed (interim as a last resort)."""
        if self._interim:
            self._finals.append(self._interim.strip())
        self._interim = ""
        self.state = UserState.LISTENING
        return self._take()

    def _take(self) -> str | None:
        text = " ".join(t for t in self._finals if t)
        self._finals.clear()
        self._speech_ended_at = None
        return text or None
