"""Opening a websocket to a voxlane gateway, with failures classified for the retry policy
(shared by the STT and TTS clients)."""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus, InvalidURI

from voxlane.core.retry import Failure, FailureKind
from voxlane.errors import (
    ProviderAuthError,
    ProviderConfigError,
    ProviderConnectionError,
    ProviderError,
)


async def open_gateway_socket(
    url: str, api_key: str, *, connect_timeout: float, close_timeout: float
) -> ClientConnection | Failure:
    """Connect with ``Authorization: Bearer``; return the connection or why it failed.

    Bounded by ``connect_timeout`` (TCP + handshake). Never raises for network failures.
    """
    try:
        return await connect(
            url,
            additional_headers={"Authorization": f"Bearer {api_key}"},
            open_timeout=connect_timeout,
            close_timeout=close_timeout,
            max_queue=64,
        )
    except InvalidStatus as exc:
        return handshake_failure(exc.response.status_code)
    except InvalidMessage as exc:
        if isinstance(exc.__cause__, EOFError | OSError):
            # Closed before any HTTP answer: the gateway closes connections over its caps
            # at accept (a full server, like 503), or the network dropped it.
            return Failure(FailureKind.RESET, "gateway closed the connection at accept")
        return Failure(FailureKind.PROTOCOL, f"handshake failed: {exc}", retryable=False)
    except (InvalidURI, InvalidHandshake) as exc:
        return Failure(FailureKind.PROTOCOL, f"handshake failed: {exc}", retryable=False)
    except TimeoutError:
        return Failure(FailureKind.TIMEOUT, "connect timed out")
    except OSError as exc:
        return Failure(FailureKind.REFUSED, f"cannot connect: {exc}")


def handshake_failure(status: int) -> Failure:
    if status in (401, 403):
        return Failure(
            FailureKind.AUTH,
            f"authentication failed: gateway answered HTTP {status} (check the API key)",
            status,
            retryable=False,
        )
    if status == 404:
        return Failure(
            FailureKind.BAD_SETTINGS,
            "no such endpoint at this URL (HTTP 404)",
            status,
            retryable=False,
        )
    return Failure(FailureKind.REFUSED, f"gateway refused the connection (HTTP {status})", status)


def failure_error(failure: Failure, provider: str) -> ProviderError:
    """The ProviderError a failure becomes when it ends the stream."""
    if failure.kind is FailureKind.AUTH:
        return ProviderAuthError(failure.message, provider=provider, code=failure.code)
    if failure.kind is FailureKind.BAD_SETTINGS:
        return ProviderConfigError(failure.message, provider=provider, code=failure.code)
    if failure.kind in (FailureKind.REFUSED, FailureKind.RESET, FailureKind.TIMEOUT):
        return ProviderConnectionError(failure.message, provider=provider, code=failure.code)
    return ProviderError(failure.message, provider=provider, code=failure.code, retryable=False)
