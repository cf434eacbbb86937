"""``voxlane sip``: answer SIP calls with an agent, one report per ended call.

Prints ``voxlane sip: listening on HOST:PORT`` (flushed) once the socket is bound, so a
supervisor or a test can wait for it. SIGTERM / SIGINT → bounded shutdown (BYE to live
calls, sessions closed, sockets closed), exit status 0. The process never waits on a task
that had to be abandoned (DESIGN §2: ``asyncio.run`` would): it exits without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from voxlane.cli import options as opt
from voxlane.runners.loader import AgentFileError, load_agent_factory
from voxlane.runners.sip_server import Providers, SipServerConfig, serve_sip
from voxlane.voice.agent import Agent

PROVIDERS = ("fake", "local")


def fake_providers() -> Providers:
    """Energy-based fakes: any loud audio is speech, replies are tones (no engines)."""
    from voxlane.testing.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD

    return Providers(stt=FakeSTT(), vad=FakeVAD(), llm=FakeLLM(), tts=FakeTTS())


@contextlib.asynccontextmanager
async def open_providers(args: argparse.Namespace) -> AsyncIterator[Callable[[], Providers]]:
    """The providers factory for ``--providers``: ``fake`` (no engines), or ``local``: the
    local voice stack (embedded gateway with whisper + piper, Silero VAD, SmolLM2 on a local
    llama.cpp server — or ``--gateway``/``--api-key``), shared by every call (each call
    opens its own streams) and stopped, bounded, when the server stops."""
    if args.providers == "fake":
        yield fake_providers
        return
    if args.providers != "local":
        raise ValueError(f"unknown providers {args.providers!r} (choose from "
                         f"{', '.join(PROVIDERS)})")
    from rich.console import Console

    from voxlane.cli.progress import dim_progress
    from voxlane.runners.stack import local_stack

    async with local_stack(progress=dim_progress(Console(stderr=True)), gateway_url=args.gateway,
                           api_key=args.api_key, stt_engine=args.stt_engine) as stack:
        shared = Providers(stt=stack.stt, vad=stack.vad, llm=stack.llm, tts=stack.tts)
        yield lambda: shared


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agent", type=opt.agent_file,
                        help="agent file (create_agent() or one Agent subclass)")
    parser.add_argument("--host", type=opt.host_address, default="127.0.0.1",
                        help="IP address to bind and advertise")
    parser.add_argument("--port", type=opt.port, default=5060, help="SIP UDP port (0: any free)")
    parser.add_argument("--reports", type=opt.out_dir, default="out/sip",
                        help="directory for <call-id>.json")
    opt.add_report_mode(parser)
    parser.add_argument("--providers", default="fake", choices=PROVIDERS,
                        help="fake: energy-based fakes; local: real local engines")
    parser.add_argument("--gateway", type=opt.gateway_url, default=None, metavar="URL",
                        help="with --providers local: use this gateway (ws://...)")
    parser.add_argument("--api-key", default=None, help="the --gateway's API key")
    parser.add_argument("--stt-engine", default="whisper", choices=["whisper", "pocketsphinx"])
    parser.add_argument("--max-calls", type=opt.positive_int, default=10)
    parser.add_argument("--allow", type=opt.cidr, action="append", default=None,
                        metavar="CIDR", help="accept calls only from these sources (repeatable)")
    parser.add_argument("--rtp-ports", type=opt.port_range, default=None, metavar="LOW-HIGH",
                        help="RTP port range (default: ephemeral ports)")
    parser.add_argument("--rtp-timeout", type=opt.positive_float, default=10.0,
                        help="seconds without RTP after which the caller is gone")
    parser.add_argument("--answer-delay", type=opt.non_negative_float, default=0.0,
                        help="ring this long before answering")
    parser.add_argument("--close-timeout", type=opt.non_negative_float, default=4.0)
    parser.add_argument("--max-call-seconds", type=opt.positive_float, default=4 * 3600.0,
                        help="hang up calls that last longer than this")
    parser.add_argument("--retry-after", type=opt.retry_after, default=5, metavar="SECONDS",
                        help="Retry-After of every 503 (full, shutting down; default 5)")


def _config(args: argparse.Namespace) -> SipServerConfig:
    return SipServerConfig(
        host=args.host, port=args.port, max_calls=args.max_calls,
        allowed_sources=tuple(args.allow) if args.allow else None,
        rtp_port_range=args.rtp_ports,
        rtp_timeout_s=args.rtp_timeout, answer_delay_s=args.answer_delay,
        close_timeout=args.close_timeout, max_call_s=args.max_call_seconds,
        reports_dir=Path(args.reports), retry_after_s=args.retry_after,
        report_mode=args.report_mode)


async def _serve(args: argparse.Namespace) -> int:
    factory = load_agent_factory(Path(args.agent))
    async with open_providers(args) as providers:
        return await _serve_with(args, factory, providers)


async def _serve_with(args: argparse.Namespace, factory: Callable[[], Agent],
                      providers: Callable[[], Providers]) -> int:
    server = await serve_sip(factory, providers, _config(args))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"voxlane sip: listening on {server.host}:{server.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.aclose()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    stats = server.statistics()
    print(f"voxlane sip: stopped after {stats.calls_offered} calls, "
          f"{stats.reports_written} reports, {len(server.abandoned)} abandoned tasks",
          flush=True)
    return 0  # a bounded shutdown is a clean exit; abandoned tasks are in the reports


def run(args: argparse.Namespace) -> int:
    """Entry point of the ``sip`` subcommand."""
    from voxlane.aio.tasks import abandoned_tasks
    from voxlane.gateway.engines.base import EngineError
    from voxlane.providers.llama_server import LlamaServerError

    runner = asyncio.Runner()
    try:
        code = runner.run(_serve(args))
    except (AgentFileError, OSError, LlamaServerError, EngineError, ModuleNotFoundError) as exc:
        # A missing engine, model or port: say which, exit 2 (nothing is left running).
        print(f"voxlane sip: error: {exc}", file=sys.stderr)
        runner.close()
        return 2
    if any(not t.done() for t in abandoned_tasks()):
        # asyncio.Runner.close() would wait for the abandoned tasks without bound.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    runner.close()
    return code
