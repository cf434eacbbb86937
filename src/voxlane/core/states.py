"""Lifecycles as explicit states and transition tables (pure: no asyncio, no clock).

Each lifecycle is an enum of states, an enum of events and a table
``{(state, event): next_state}``. Anything not in the table is illegal and raises
:class:`~voxlane.errors.IllegalTransition` naming the machine, the state and the event.

The session and activity lifecycles are in :mod:`voxlane.core.lifecycle`; their states
and the close reasons are defined here so that light modules can name them.

Speech (one ``SpeechHandle``)::

    QUEUED ──schedule──▶ PLAYING ──finish──▶ DONE
      │                    │
      │ interrupt          │ interrupt
      ▼                    ▼
     DONE             INTERRUPTING ──finish──▶ DONE

``interrupt`` is idempotent in INTERRUPTING and DONE (a late interrupt is harmless).
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Generic, TypeVar

from voxlane.errors import IllegalTransition

S = TypeVar("S", bound=Enum)
E = TypeVar("E", bound=Enum)


class StateMachine(Generic[S, E]):
    """A state plus its transition table. ``fire`` moves or raises; it never blocks."""

    def __init__(self, name: str, table: dict[tuple[S, E], S], initial: S) -> None:
        self.name = name
        self._table = table
        self.state = initial

    def can(self, event: E) -> bool:
        return (self.state, event) in self._table

    def fire(self, event: E) -> S:
        """Apply ``event``; return the new state. Raises ``IllegalTransition`` if not allowed."""
        try:
            self.state = self._table[(self.state, event)]
        except KeyError:
            raise IllegalTransition(self.name, self.state.name, event.name) from None
        return self.state


class SessionState(Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    CLOSING = "closing"
    CLOSED = "closed"


class SpeechState(Enum):
    QUEUED = "queued"
    PLAYING = "playing"
    INTERRUPTING = "interrupting"
    DONE = "done"


class SpeechEvent(Enum):
    SCHEDULE = "schedule"
    INTERRUPT = "interrupt"
    FINISH = "finish"


_PS, _PE = SpeechState, SpeechEvent
SPEECH_TRANSITIONS: dict[tuple[SpeechState, SpeechEvent], SpeechState] = {
    (_PS.QUEUED, _PE.SCHEDULE): _PS.PLAYING,
    (_PS.QUEUED, _PE.INTERRUPT): _PS.DONE,
    (_PS.QUEUED, _PE.FINISH): _PS.DONE,
    (_PS.PLAYING, _PE.INTERRUPT): _PS.INTERRUPTING,
    (_PS.PLAYING, _PE.FINISH): _PS.DONE,
    (_PS.INTERRUPTING, _PE.INTERRUPT): _PS.INTERRUPTING,
    (_PS.INTERRUPTING, _PE.FINISH): _PS.DONE,
    (_PS.DONE, _PE.INTERRUPT): _PS.DONE,
    (_PS.DONE, _PE.FINISH): _PS.DONE,
}


def speech_machine() -> StateMachine[SpeechState, SpeechEvent]:
    return StateMachine("speech", SPEECH_TRANSITIONS, SpeechState.QUEUED)


class CloseReason(StrEnum):
    """Why a session closed (DESIGN I3)."""

    PARTICIPANT_DISCONNECTED = "participant_disconnected"
    USER_INITIATED = "user_initiated"
    ERROR = "error"
    JOB_SHUTDOWN = "job_shutdown"
    DRAINED = "drained"
