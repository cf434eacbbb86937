"""``voxlane gateway``: run the local inference gateway until SIGTERM/SIGINT.

Prints ``listening on ws://HOST:PORT`` (stdout, flushed) once ready; logs one line per
connection and session to stderr (never transcripts or keys). On SIGTERM or SIGINT every
live session gets ``session.closed``, sockets close, and the process exits 0. A bad option
value is one line on stderr (``voxlane gateway: error: ...``) and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

from voxlane.gateway.engines import STT_ENGINES
from voxlane.gateway.engines.base import EngineError
from voxlane.gateway.faults import FaultPlan, parse_fault
from voxlane.gateway.server import GatewayConfig, check_api_key, start_gateway

__all__ = ["build_parser", "main"]

_log = logging.getLogger("voxlane.gateway")


class UsageError(Exception):
    """A bad command line; its message is the one line printed."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage and exits; one line is enough (and testable).
        raise UsageError(message)


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, not {value}")
        return value

    return parse


def _port(text: str) -> int:
    value = _int_at_least(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0, not {text}")
    return value


def build_parser(prog: str = "voxlane gateway") -> argparse.ArgumentParser:
    """The gateway's options; a bad value makes ``parse_args`` raise :class:`UsageError`."""
    parser = _Parser(prog=prog, description="voxlane local inference gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_port, default=8790, help="0 = pick a free port")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("VOXLANE_GATEWAY_API_KEY"),
        help="bearer key clients must send (default: $VOXLANE_GATEWAY_API_KEY)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="close a connection with nothing to do for this long (2007; default 30)",
    )
    parser.add_argument(
        "--send-timeout",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="a client that does not read one frame for this long is closed (2014, "
        "close 1008; default 5)",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="a connection must finish its opening handshake this long after it is "
        "accepted, else it is dropped (default 5)",
    )
    parser.add_argument("--stt-engine", choices=STT_ENGINES, default="pocketsphinx")
    parser.add_argument(
        "--max-sessions",
        type=_int_at_least(1),
        default=8,
        metavar="N",
        help="live /v1/stt sessions (default 8)",
    )
    parser.add_argument(
        "--max-tts-sessions",
        type=_int_at_least(1),
        default=8,
        metavar="N",
        help="open /v1/tts connections (default 8; more get HTTP 503)",
    )
    parser.add_argument(
        "--max-connections",
        type=_int_at_least(1),
        default=256,
        metavar="N",
        help="open TCP connections in all, handshakes in progress included (default 256; "
        "more are closed at accept)",
    )
    parser.add_argument(
        "--max-connections-per-client",
        type=_int_at_least(1),
        default=32,
        metavar="N",
        help="open TCP connections from one client address (default 32; more are closed at accept)",
    )
    parser.add_argument(
        "--failed-handshake-burst",
        type=_int_at_least(1),
        default=10,
        metavar="N",
        help="failed handshakes (400/401/404) a client address may make at once (default "
        "10); past them every handshake from it gets HTTP 429",
    )
    parser.add_argument(
        "--failed-handshake-rate",
        type=_positive_float,
        default=1.0,
        metavar="PER_S",
        help="failed handshakes per second a client address earns back (default 1)",
    )
    parser.add_argument(
        "--engine-processes",
        type=_int_at_least(0),
        default=0,
        metavar="N",
        help="run recognizers in N worker processes (0: threads; pocketsphinx uses one "
        "core per process)",
    )
    parser.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    # Test-only fault injection (see voxlane.gateway.faults); deliberately undocumented.
    parser.add_argument("--fault", action="append", default=[], help=argparse.SUPPRESS)
    return parser


#: Never below WARNING: websockets logs each connection too (ours already carry the
#: connection id), and at DEBUG it logs request lines (query strings included), headers
#: (the bearer key) and every text frame. voxlane.worker.logs.QUIET_LOGGERS is the same
#: list for the other commands (the gateway may not import the worker).
QUIET_LOGGERS = ("websockets", "websockets.client", "websockets.server")


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``; the :data:`QUIET_LOGGERS` at WARNING at least."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET (0) included: it would inherit DEBUG
            logger.setLevel(logging.WARNING)


async def _serve(config: GatewayConfig, faults: FaultPlan) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await start_gateway(config, faults=faults)
    print(f"listening on {server.url}", flush=True)
    try:
        await stop.wait()
        _log.info("signal received: shutting down")
    finally:
        await server.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the gateway; return the process exit code (0 after a signal-driven shutdown,
    2 for a bad command line, 1 if the port cannot be bound)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    if not args.api_key:
        print(
            f"{parser.prog}: error: --api-key (or VOXLANE_GATEWAY_API_KEY) is required",
            file=sys.stderr,
        )
        return 2
    try:  # GatewayConfig checks it too; here the message names the option
        check_api_key(args.api_key, "--api-key (or VOXLANE_GATEWAY_API_KEY)")
    except ValueError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    try:
        faults = FaultPlan()
        for spec in args.fault:
            faults = parse_fault(spec, faults)
        config = GatewayConfig(
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            idle_timeout_s=args.idle_timeout,
            handshake_timeout_s=args.handshake_timeout,
            send_timeout_s=args.send_timeout,
            stt_engine=args.stt_engine,
            max_sessions=args.max_sessions,
            max_tts_sessions=args.max_tts_sessions,
            max_connections=args.max_connections,
            max_connections_per_client=args.max_connections_per_client,
            failed_handshake_burst=args.failed_handshake_burst,
            failed_handshake_rate=args.failed_handshake_rate,
            engine_processes=args.engine_processes,
            engine_threads=max(4, args.max_sessions),
        )
    except ValueError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    # A fresh loop closed without asyncio.run()'s "cancel and await every leftover task":
    # everything the gateway starts is owned and ended by aclose(), and a stuck leftover
    # must not keep the process from exiting (DESIGN §2).
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_serve(config, faults))
    except (OSError, TimeoutError, EngineError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        loop.close()
