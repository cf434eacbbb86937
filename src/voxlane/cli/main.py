"""The ``voxlane`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from rich.console import Console


def _demo(args: argparse.Namespace) -> int:
    from voxlane.cli.demo import run_demo
    from voxlane.cli.loader import AgentFileError
    from voxlane.testing.adversarial import release_all
    from voxlane.testing.virtual_time import VirtualTimeLoop

    console = Console(highlight=False)
    loop_factory = VirtualTimeLoop if args.fast else None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            result = runner.run(run_demo(Path(args.out), Path(args.agent), console))
            release_all()
    except AgentFileError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    return 0 if result.report["close"]["open_connections_after"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voxlane", description="voxlane voice agents")
    parser.add_argument("--log-level", default="WARNING")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="a scripted call to an agent on the local room")
    demo.add_argument("--out", default="out/demo", help="directory for report.json, call.wav")
    demo.add_argument("--agent", default="examples/receptionist.py", help="agent file")
    demo.add_argument("--fast", action="store_true", help="run on virtual time (no waiting)")
    demo.set_defaults(func=_demo)

    from voxlane.cli import sip as sip_cli

    sip = sub.add_parser("sip", help="answer SIP calls with an agent (one report per call)")
    sip_cli.add_arguments(sip)
    sip.set_defaults(func=sip_cli.run)

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
