"""The voxlane error tree.

Every error voxlane raises derives from :class:`VoxlaneError`::

    VoxlaneError
     ├── IllegalTransition        an event a lifecycle does not accept in its state
     ├── ClosedError              we closed it: using a session/stream/channel after close
     │    ├── SessionClosedError
     │    └── ChannelClosedError
     ├── BrokenError              the peer broke it: connection lost, process gone
     ├── ProviderError            an STT/TTS/LLM/VAD provider failed; carries ``retryable``
     │    ├── ProviderConnectionError   could not connect / connection dropped (retryable)
     │    ├── ProviderTimeoutError      a deadline passed waiting on the provider (retryable)
     │    ├── ProviderAuthError         credentials refused (fatal)
     │    ├── ProviderConfigError       settings the provider does not support (fatal)
     │    └── ProviderProtocolError     the provider sent nonsense
     └── ToolError                raised by a function tool to report a failure to the LLM

Third-party exceptions are translated at the adapter boundary with the cause chained
(``raise ProviderConnectionError(...) from exc``).
"""

from __future__ import annotations


class VoxlaneError(Exception):
    """Root of every error raised by voxlane."""


class IllegalTransition(VoxlaneError):
    """A lifecycle received an event it does not accept in its current state."""

    def __init__(self, machine: str, state: str, event: str) -> None:
        super().__init__(f"{machine}: event {event!r} is not allowed in state {state!r}")
        self.machine = machine
        self.state = state
        self.event = event


class ClosedError(VoxlaneError):
    """The object was closed by us; it cannot be used any more."""


class SessionClosedError(ClosedError):
    """The session is closing or closed: no new speech can be scheduled."""


class ChannelClosedError(ClosedError):
    """A bounded channel was closed; nothing more can be sent or received."""


class BrokenError(VoxlaneError):
    """The peer broke the connection or went away."""


class ProviderError(VoxlaneError):
    """A provider failed. ``retryable`` says whether trying again may help."""

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        retryable: bool | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = self.default_retryable if retryable is None else retryable
        self.code = code

    def __str__(self) -> str:
        base = super().__str__()
        return f"{self.provider}: {base}" if self.provider else base


class ProviderConnectionError(ProviderError):
    """Could not connect, or the connection dropped."""

    default_retryable = True


class ProviderTimeoutError(ProviderError):
    """A deadline passed while waiting on the provider."""

    default_retryable = True


class ProviderAuthError(ProviderError):
    """The provider refused our credentials. Never retried."""


class ProviderConfigError(ProviderError):
    """The provider does not support the requested settings. Never retried."""


class ProviderProtocolError(ProviderError):
    """The provider sent something that does not follow its protocol."""


class ToolError(VoxlaneError):
    """Raise from a function tool: the message is returned to the LLM as the tool's error."""
