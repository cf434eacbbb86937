"""What a gateway log line may say about an engine's exception.

An engine exception's text can quote what the client sent: espeak-ng's
``CalledProcessError`` and ``TimeoutExpired`` carry the command line, which holds the text
to speak; pocketsphinx grammar errors and an engine worker's reported failure can quote
the session's phrases. So logs name the exception's type, plus a detail known to carry
nothing of the request (a return code, a timeout). Client-supplied strings (a request
``id``, say) go through :func:`voxlane.gateway.protocol.shorten`, which escapes control
characters and cuts them short.
"""

from __future__ import annotations

import subprocess

__all__ = ["exception_summary"]


def exception_summary(exc: BaseException | None) -> str:
    """``"TypeName"``, or ``"CalledProcessError (exit status 1)"``, ``"TimeoutExpired
    (after 10s)"``: never the exception's message or arguments."""
    if exc is None:
        return "None"
    name = type(exc).__name__
    if isinstance(exc, subprocess.CalledProcessError):
        return f"{name} (exit status {int(exc.returncode)})"
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"{name} (after {float(exc.timeout):g}s)"
    return name
