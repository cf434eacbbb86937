"""The ``voxlane`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

from rich.console import Console
from rich.markup import escape

from voxlane.cli import options as opt


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
    except AgentFileError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 2
    except (LlamaServerError, EngineError, ModuleNotFoundError) as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
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
    out, agent, mode = args.out, args.agent, args.report_mode
    if args.fake:
        coro = run_fake_demo(out, agent, console, report_mode=mode)
        return _run_call(coro, fast=args.fast, console=console)
    coro = run_local_demo(
        out,
        agent,
        console,
        scripted_llm=args.llm == "scripted",
        report_mode=mode,
        **_stack_options(args),
    )
    return _run_call(coro, fast=False, console=console)


def _console(args: argparse.Namespace) -> int:
    from voxlane.cli.demo import run_console

    console = Console(highlight=False)
    coro = run_console(
        args.input,
        args.out,
        args.agent,
        console,
        scripted_llm=args.llm == "scripted",
        report_mode=args.report_mode,
        **_stack_options(args),
    )
    return _run_call(coro, fast=False, console=console)


def _gateway(argv: list[str]) -> int:
    from voxlane.gateway.cli import main as gateway_main

    return gateway_main(argv)


def _add_stack_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gateway",
        type=opt.gateway_url,
        metavar="URL",
        help="use this gateway (ws://HOST:PORT) instead of starting one",
    )
    p.add_argument("--api-key", help="the gateway's API key (with --gateway)")
    p.add_argument("--stt-engine", default="whisper", choices=["whisper", "pocketsphinx"])
    p.add_argument(
        "--agent",
        type=opt.agent_file,
        default="examples/receptionist.py",
        help="agent file (default: %(default)s)",
    )
    opt.add_report_mode(p)


def build_parser() -> argparse.ArgumentParser:
    """The ``voxlane`` parser (``gateway`` has its own, see voxlane.gateway.cli)."""
    parser = opt.Parser(prog="voxlane", description="voxlane voice agents")
    parser.add_argument(
        "--log-level",
        type=opt.log_level,
        default="WARNING",
        help="DEBUG, INFO, WARNING (default), ERROR",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error (also: VOXLANE_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("gateway", help="run the local inference gateway (see: voxlane gateway -h)")

    demo = sub.add_parser("demo", help="a scripted call to an agent on the local room")
    demo.add_argument(
        "--out", type=opt.out_dir, default="out/demo", help="directory for report.json, call.wav"
    )
    demo.add_argument("--fake", action="store_true", help="fake providers instead of engines")
    demo.add_argument("--fast", action="store_true", help="with --fake: run on virtual time")
    demo.add_argument("--llm", default="local", choices=["local", "scripted"])
    _add_stack_options(demo)
    demo.set_defaults(func=_demo)

    con = sub.add_parser("console", help="call an agent with your own recording")
    con.add_argument(
        "--input",
        required=True,
        type=opt.wav_file,
        metavar="WAV",
        help="a WAV file: PCM 8/16/24/32-bit or float, any rate, any channels",
    )
    con.add_argument(
        "--out", type=opt.out_dir, default="out/console", help="directory for report.json, call.wav"
    )
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
    return parser


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``; websockets never below WARNING (at DEBUG it would log
    the gateway's bearer key and every frame's text)."""
    from voxlane.worker.logs import quiet_websockets

    logging.basicConfig(level=level, format="%(levelname)s %(name)s %(message)s")
    quiet_websockets()


def main(argv: list[str] | None = None) -> int:
    """``voxlane``: parse (a mistake: one line on stderr, exit 2), run the subcommand.
    An error that reaches here — voxlane's own (``VoxlaneError``), the OS's (a port in use,
    a directory we may not write) or an agent file's — is one line and exit 2, never a
    traceback (``--debug`` or ``VOXLANE_DEBUG=1`` shows it)."""
    from voxlane.errors import VoxlaneError
    from voxlane.runners.loader import AgentFileError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gateway"]:
        return _gateway(argv[1:])  # the gateway has its own parser
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # -h (0) or a mistake, already printed as one line (2)
        return exc.code if isinstance(exc.code, int) else 2
    prog = f"voxlane {args.command}"
    problem = opt.gateway_problem(args)
    if problem is not None:
        return opt.fail(prog, f"{problem} (see {prog} -h)")
    configure_logging(args.log_level)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except MemoryError:
        return opt.fail(prog, "out of memory", 1)
    except (VoxlaneError, AgentFileError, OSError) as exc:
        if opt.debug_enabled(args):
            raise
        return opt.fail(prog, str(exc) or type(exc).__name__)


if __name__ == "__main__":
    sys.exit(main())
