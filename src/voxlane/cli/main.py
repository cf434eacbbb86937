"""The ``voxlane`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from rich.console import Console


def _run_call(coro: Coroutine[Any, Any, Any], *, fast: bool, console: Console) -> int:
    """Run a demo/console call; exit 0 only if every connection was closed."""
    from voxlane.gateway.engines.base import EngineError
    from voxlane.providers.llama_server import LlamaServerError
    from voxlane.runners.loader import AgentFileError
    from voxlane.testing.adversarial import release_all
    from voxlane.testing.virtual_time import VirtualTimeLoop

    try:
        with asyncio.Runner(loop_factory=VirtualTimeLoop if fast else None) as runner:
            result = runner.run(coro)
            release_all()
    except (AgentFileError, LlamaServerError, EngineError, ModuleNotFoundError) as exc:
        console.print(f"[red]error:[/] {exc}")
        console.print("[dim]the local stack is installed by `make demo`; or use --fake[/]")
        return 2
    return 0 if result.report["close"]["open_connections_after"] == 0 else 1


def _stack_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "gateway_url": args.gateway,
        "api_key": args.api_key,
        "stt_engine": args.stt_engine,
    }


def _demo(args: argparse.Namespace) -> int:
    from voxlane.cli.demo import run_fake_demo, run_local_demo

    console = Console(highlight=False)
    out, agent = Path(args.out), Path(args.agent)
    if args.fake:
        return _run_call(run_fake_demo(out, agent, console), fast=args.fast, console=console)
    coro = run_local_demo(
        out, agent, console, scripted_llm=args.llm == "scripted", **_stack_options(args)
    )
    return _run_call(coro, fast=False, console=console)


def _console(args: argparse.Namespace) -> int:
    from voxlane.cli.demo import run_console

    console = Console(highlight=False)
    coro = run_console(
        Path(args.input),
        Path(args.out),
        Path(args.agent),
        console,
        scripted_llm=args.llm == "scripted",
        **_stack_options(args),
    )
    return _run_call(coro, fast=False, console=console)


def _gateway(argv: list[str]) -> int:
    from voxlane.gateway.cli import main as gateway_main

    return gateway_main(argv)


def _add_stack_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gateway", help="use this gateway (ws://HOST:PORT) instead of starting one")
    p.add_argument("--api-key", help="the gateway's API key (with --gateway)")
    p.add_argument("--stt-engine", default="whisper", choices=["whisper", "pocketsphinx"])
    p.add_argument("--agent", default="examples/receptionist.py", help="agent file")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gateway"]:
        return _gateway(argv[1:])  # the gateway has its own parser
    parser = argparse.ArgumentParser(prog="voxlane", description="voxlane voice agents")
    parser.add_argument("--log-level", default="WARNING")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("gateway", help="run the local inference gateway (see: voxlane gateway -h)")

    demo = sub.add_parser("demo", help="a scripted call to an agent on the local room")
    demo.add_argument("--out", default="out/demo", help="directory for report.json, call.wav")
    demo.add_argument("--fake", action="store_true", help="fake providers instead of engines")
    demo.add_argument("--fast", action="store_true", help="with --fake: run on virtual time")
    demo.add_argument("--llm", default="local", choices=["local", "scripted"])
    _add_stack_options(demo)
    demo.set_defaults(func=_demo)

    con = sub.add_parser("console", help="call an agent with your own recording")
    con.add_argument("--input", required=True, help="a 16-bit PCM WAV file (any rate)")
    con.add_argument("--out", default="out/console")
    con.add_argument("--llm", default="local", choices=["local", "scripted"])
    _add_stack_options(con)
    con.set_defaults(func=_console)

    from voxlane.cli import sip as sip_cli

    sip = sub.add_parser("sip", help="answer SIP calls with an agent (one report per call)")
    sip_cli.add_arguments(sip)
    sip.set_defaults(func=sip_cli.run)

    from voxlane.cli.start import add_arguments, run_start

    start = sub.add_parser("start", help="run a worker: each call in its own job process")
    add_arguments(start)
    start.set_defaults(func=run_start)

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
