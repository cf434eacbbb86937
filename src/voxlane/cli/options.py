"""Checked command-line options: every ``voxlane`` option is parsed by one of these.

Each ``type=`` function takes the option's string and returns its value, or raises
``argparse.ArgumentTypeError`` with a one-line message; :class:`Parser` prints argparse's
errors as one line (``voxlane sip: error: argument --port: ...``) and exits with status 2,
never a traceback. Checks that need several options at once go through
:func:`gateway_problem` after parsing.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

__all__ = [
    "Parser",
    "add_report_mode",
    "agent_file",
    "cidr",
    "debug_enabled",
    "fail",
    "file_mode",
    "gateway_problem",
    "gateway_url",
    "host_address",
    "host_port",
    "log_level",
    "non_negative_float",
    "non_negative_int",
    "out_dir",
    "port",
    "port_range",
    "positive_float",
    "positive_int",
    "readable_file",
    "script",
    "wav_file",
]

Bad = argparse.ArgumentTypeError


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit status 2 (the
    usage is one ``-h`` away; a wall of it hides what was wrong). Subparsers made with
    ``add_subparsers`` are of this class too."""

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())  # never more than one line
        self.exit(2, f"{self.prog}: error: {line} (see {self.prog} -h)\n")


def _number(kind: Callable[[str], float], text: str, what: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise Bad(f"{text!r} is not {what}") from None
    if value != value or value in (float("inf"), float("-inf")):  # NaN, inf
        raise Bad(f"{text!r} is not {what}")
    return value


def positive_int(text: str) -> int:
    value = int(_number(int, text, "a whole number"))
    if value < 1:
        raise Bad(f"{text} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    value = int(_number(int, text, "a whole number"))
    if value < 0:
        raise Bad(f"{text} must be 0 or more")
    return value


def retry_after(text: str) -> int:
    """Whole seconds for a Retry-After header: 0..86400."""
    value = non_negative_int(text)
    if value > 86400:
        raise Bad(f"{text} must be at most 86400 seconds")
    return value


def positive_float(text: str) -> float:
    """Seconds (or another quantity) greater than 0."""
    value = _number(float, text, "a number")
    if value <= 0:
        raise Bad(f"{text} must be more than 0")
    return value


def non_negative_float(text: str) -> float:
    """Seconds (or another quantity), 0 or more."""
    value = _number(float, text, "a number")
    if value < 0:
        raise Bad(f"{text} must be 0 or more")
    return value


def port(text: str) -> int:
    """A UDP/TCP port to bind: 1-65535, or 0 for any free port."""
    value = int(_number(int, text, "a port number"))
    if not 0 <= value <= 65535:
        raise Bad(f"{text} is not a port (1-65535, or 0 for any free port)")
    return value


def port_range(text: str) -> tuple[int, int]:
    """``LOW-HIGH``, 1 <= LOW < HIGH <= 65535 (inclusive; RTP uses the even ports)."""
    low_s, sep, high_s = text.partition("-")
    if not sep or not low_s.strip().isdigit() or not high_s.strip().isdigit():
        raise Bad(f"{text!r} is not a port range LOW-HIGH (e.g. 40000-40999)")
    low, high = int(low_s), int(high_s)
    if not 1 <= low <= 65535 or not 1 <= high <= 65535:
        raise Bad(f"{text!r}: ports are 1-65535")
    if low >= high:
        raise Bad(f"{text!r}: LOW must be below HIGH")
    return low, high


def host_address(text: str) -> str:
    """An IP address to bind and advertise (SDP and Via carry it: no host names)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise Bad(f"{text!r} is not an IP address (e.g. 127.0.0.1)") from None


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6: ``[::1]:5060``); HOST an IP address, PORT 0-65535."""
    host, sep, port_s = text.rpartition(":")
    if not sep or not host:
        raise Bad(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:5060)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host_address(host), port(port_s)


def cidr(text: str) -> str:
    """A network (``10.0.0.0/8``, ``2001:db8::/32``) or one address (``192.0.2.7``)."""
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise Bad(f"{text!r} is not an address or network (e.g. 192.0.2.0/24)") from None


def readable_file(text: str) -> Path:
    """An existing file this process may read."""
    path = Path(text)
    if not path.exists():
        raise Bad(f"{text}: no such file")
    if not path.is_file():
        raise Bad(f"{text}: not a file")
    if not os.access(path, os.R_OK):
        raise Bad(f"{text}: permission denied")
    return path


def agent_file(text: str) -> Path:
    """An agent file (``create_agent()`` or one ``Agent`` subclass): a readable ``.py``."""
    path = readable_file(text)
    if path.suffix != ".py":
        raise Bad(f"{text}: an agent file is a Python file (.py)")
    return path


def wav_file(text: str) -> Path:
    """A WAV file :func:`voxlane.wav.read_wav` decodes, with some audio in it."""
    from voxlane.wav import WavError, probe_wav

    readable_file(text)
    try:
        fmt = probe_wav(text)
    except WavError as exc:
        raise Bad(str(exc)) from None
    if fmt.frames == 0:
        raise Bad(f"{text}: the WAV file has no audio")
    return Path(text)


def out_dir(text: str) -> Path:
    """A directory to write into: it exists, or can be made (its nearest existing parent
    is a directory we may write)."""
    path = Path(text)
    if path.exists():
        if not path.is_dir():
            raise Bad(f"{text}: exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise Bad(f"{text}: permission denied")
        return path
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise Bad(f"{text}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise Bad(f"{text}: cannot create it ({parent}: permission denied)")
    return path


def file_mode(text: str) -> int:
    """An octal file mode for reports (``0600``, ``640``, ``0o640``): read/write bits only,
    and the owner (this process) must keep read and write."""
    digits = text.lower().removeprefix("0o")
    try:
        mode = int(digits, 8)
    except ValueError:
        raise Bad(f"{text!r} is not an octal file mode (e.g. 0600)") from None
    if mode & ~0o666:
        raise Bad(f"{text}: only read/write bits (at most 0666) for a report")
    if mode & 0o600 != 0o600:
        raise Bad(f"{text}: the owner must keep read and write (0600)")
    return mode


def add_report_mode(parser: argparse.ArgumentParser) -> None:
    """``--report-mode MODE``: the file mode of the reports (and recordings) a command
    writes; default 0600 (:data:`voxlane.voice.report.REPORT_MODE`)."""
    parser.add_argument(
        "--report-mode",
        type=file_mode,
        default=0o600,
        metavar="MODE",
        help="file mode of the reports (they hold transcripts), octal (default: 0600)",
    )


def log_level(text: str) -> str:
    """DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)."""
    name = text.upper()
    if name not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise Bad(f"{text!r} is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
    return name


def gateway_url(text: str) -> str:
    """``ws://HOST:PORT`` or ``wss://HOST:PORT`` of a running gateway (no path)."""
    try:
        parts = urlsplit(text)
        has_port = parts.port is not None
    except ValueError:
        raise Bad(f"{text!r} is not a gateway URL (ws://HOST:PORT)") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname or not has_port:
        raise Bad(f"{text!r} is not a gateway URL (ws://HOST:PORT)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise Bad(f"{text!r}: give the gateway's ws://HOST:PORT only (no path)")
    return text.rstrip("/")


def script(text: str) -> Any:
    """A call script: inline JSON (text starting with ``{``) or the path of a JSON file.
    Returns a :class:`voxlane.worker.synthetic.SyntheticCall` template."""
    from voxlane.worker.synthetic import ScriptError, template_from_json

    source = "inline script"
    if text.lstrip().startswith("{"):
        body = text
    else:
        path = readable_file(text)
        source = str(path)
        try:
            body = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise Bad(f"{text}: cannot read it ({exc})") from None
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise Bad(f"{source}: not valid JSON ({exc.msg} at {where})") from None
    try:
        return template_from_json(obj, source)
    except ScriptError as exc:
        raise Bad(str(exc)) from None


def gateway_problem(args: argparse.Namespace) -> str | None:
    """Why ``--gateway`` and ``--api-key`` do not go together here, or None: each needs the
    other (the embedded gateway makes its own key)."""
    gateway, key = getattr(args, "gateway", None), getattr(args, "api_key", None)
    if gateway and not key:
        return "--gateway needs --api-key (the running gateway's key)"
    if key and not gateway:
        return "--api-key goes with --gateway (the embedded gateway makes its own key)"
    return None


def debug_enabled(args: argparse.Namespace | None) -> bool:
    """``voxlane --debug ...``, or ``VOXLANE_DEBUG`` set to anything but empty or 0: errors
    that reach ``main`` are shown with their traceback."""
    flag = os.environ.get("VOXLANE_DEBUG", "")
    return bool(getattr(args, "debug", False)) or flag not in ("", "0")


def fail(prog: str, message: str, code: int = 2) -> int:
    """Print ``prog: error: message`` as one line on stderr; return ``code``."""
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    return code
