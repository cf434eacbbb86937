"""``voxlane gateway``: run the local inference gateway until SIGTERM/SIGINT.

Prints ``listening on ws://HOST:PORT`` (stdout, flushed) once ready; logs one line per
connection and session to stderr (never transcripts at INFO). On SIGTERM or SIGINT every
live session gets ``session.closed``, sockets close, and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from voxlane.gateway.engines import STT_ENGINES
from voxlane.gateway.faults import FaultPlan, parse_fault
from voxlane.gateway.server import GatewayConfig, start_gateway

__all__ = ["build_parser", "main"]

_log = logging.getLogger("voxlane.gateway")


def build_parser(prog: str = "voxlane gateway") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="voxlane local inference gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790, help="0 = pick a free port")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("VOXLANE_GATEWAY_API_KEY"),
        help="bearer key clients must send (default: $VOXLANE_GATEWAY_API_KEY)",
    )
    parser.add_argument("--idle-timeout", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument("--stt-engine", choices=STT_ENGINES, default="pocketsphinx")
    parser.add_argument("--max-sessions", type=int, default=8, metavar="N")
    parser.add_argument(
        "--engine-processes", type=int, default=0, metavar="N",
        help="run recognizers in N worker processes (0: threads; pocketsphinx uses one "
        "core per process)",
    )
    parser.add_argument("--log-level", default="INFO")
    # Test-only fault injection (see voxlane.gateway.faults); deliberately undocumented.
    parser.add_argument("--fault", action="append", default=[], help=argparse.SUPPRESS)
    return parser


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
    """Run the gateway; return the process exit code (0 after a signal-driven shutdown)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # websockets logs each connection too; ours already carry the connection id.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    if not args.api_key:
        print("error: --api-key (or VOXLANE_GATEWAY_API_KEY) is required", file=sys.stderr)
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
            stt_engine=args.stt_engine,
            max_sessions=args.max_sessions,
            engine_processes=args.engine_processes,
            engine_threads=max(4, args.max_sessions),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # A fresh loop closed without asyncio.run()'s "cancel and await every leftover task":
    # everything the gateway starts is owned and ended by aclose(), and a stuck leftover
    # must not keep the process from exiting (DESIGN §2).
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_serve(config, faults))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        loop.close()
