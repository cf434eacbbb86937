"""``voxlane start``: run a worker that takes calls, each in its own job process.

It prints ``{"event": "started", ...}`` once the worker takes calls (job pool warm, call
source serving) — never before: until then ``/healthz`` says ``starting`` and a SIP
INVITE is answered 503. The process never waits without a bound on its way out:
SIGTERM/SIGINT drains (bounded by ``--drain-timeout``), a second signal forces, and the
event loop is left without awaiting abandoned tasks (no ``asyncio.run()`` teardown: DESIGN §2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from voxlane.cli import options as opt


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "agent_file",
        type=opt.agent_file,
        help="the agent file (create_agent() or one Agent subclass)",
    )
    p.add_argument(
        "--reports", required=True, type=opt.out_dir, help="directory for <job-id>.json reports"
    )
    opt.add_report_mode(p)
    p.add_argument(
        "--metrics-port",
        type=opt.port,
        default=0,
        help="/metrics and /healthz port on 127.0.0.1 (0: any free port)",
    )
    p.add_argument("--max-jobs", type=opt.positive_int, default=4)
    p.add_argument(
        "--prewarm",
        type=opt.non_negative_int,
        default=None,
        help="ready job processes (default: max-jobs, at most 4)",
    )
    p.add_argument("--drain-timeout", type=opt.non_negative_float, default=30.0)
    p.add_argument("--job-close-timeout", type=opt.positive_float, default=5.0)
    p.add_argument(
        "--sip",
        type=opt.host_port,
        metavar="HOST:PORT",
        help="take SIP calls on this UDP address (PORT 0: any free port)",
    )
    p.add_argument(
        "--rtp-ports",
        type=opt.port_range,
        default=None,
        metavar="LOW-HIGH",
        help="RTP port range of the job processes (default: ephemeral ports)",
    )
    p.add_argument(
        "--rtp-timeout",
        type=opt.positive_float,
        default=10.0,
        help="seconds without RTP after which a SIP caller is gone",
    )
    p.add_argument(
        "--allow",
        type=opt.cidr,
        action="append",
        default=None,
        metavar="CIDR",
        help="accept SIP calls only from these sources (repeatable)",
    )
    p.add_argument(
        "--retry-after",
        type=opt.retry_after,
        default=5,
        metavar="SECONDS",
        help="Retry-After of every 503 the SIP source sends (full, starting, draining)",
    )
    p.add_argument(
        "--providers",
        default="fake",
        choices=["fake", "local"],
        help="SIP calls' providers. fake: energy-based fakes; local: real engines "
        "(the worker runs the embedded gateway and the local LLM server, "
        "each job connects to them)",
    )
    p.add_argument(
        "--gateway",
        type=opt.gateway_url,
        default=None,
        metavar="URL",
        help="with --providers local: use this gateway instead of the embedded one",
    )
    p.add_argument("--api-key", default=None, help="the --gateway's API key")
    p.add_argument("--stt-engine", default="whisper", choices=["whisper", "pocketsphinx"])
    p.add_argument(
        "--synthetic", type=opt.positive_int, metavar="N", help="N concurrent synthetic calls"
    )
    p.add_argument(
        "--synthetic-total", type=opt.positive_int, default=None, help="stop after this many"
    )
    p.add_argument(
        "--call-seconds", type=opt.positive_float, default=3.0, help="synthetic call length"
    )
    p.add_argument(
        "--script",
        "--synthetic-script",
        dest="script",
        type=opt.script,
        metavar="FILE|JSON",
        help="the calls' LLM script (fake providers) and synthetic callers' turns: a JSON "
        "file, or the JSON itself ('{\"llm\": [...]}')",
    )
    p.add_argument("--log-format", choices=["text", "json"], default="text")


def run_start(args: argparse.Namespace) -> int:
    if bool(args.sip) == bool(args.synthetic):
        print(
            "voxlane start: choose one call source (--sip HOST:PORT or --synthetic N)",
            file=sys.stderr,
        )
        return 2
    if args.providers != "fake" and not args.sip:
        print("voxlane start: --providers local is for SIP calls (--sip)", file=sys.stderr)
        return 2
    from voxlane.worker.logs import setup_logging

    setup_logging(getattr(args, "log_level", "WARNING"), args.log_format)
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_main(args))
    finally:
        # No shutdown_asyncgens/shutdown_default_executor (they wait): close() cancels
        # nothing and returns at once; anything left dies with the process.
        loop.close()
        sys.stdout.flush()


async def _main(args: argparse.Namespace) -> int:
    if args.providers != "local":
        return await _run_worker(args, None)
    from rich.console import Console

    from voxlane.cli.progress import dim_progress
    from voxlane.gateway.engines.base import EngineError
    from voxlane.providers.llama_server import LlamaServerError
    from voxlane.runners.stack import local_stack

    # The engines live here, once; each call's job process connects to them.
    try:
        async with local_stack(
            progress=dim_progress(Console(stderr=True)),
            gateway_url=args.gateway,
            api_key=args.api_key,
            stt_engine=args.stt_engine,
        ) as stack:
            urls: dict[str, str | None] = {
                "gateway_url": stack.gateway_url,
                "api_key": stack.api_key,
                "llm_base_url": stack.llm_base_url,
            }
            return await _run_worker(args, urls)
    except (LlamaServerError, EngineError, ModuleNotFoundError) as exc:
        print(f"voxlane start: the local stack did not start: {exc}", file=sys.stderr)
        return 2


async def _run_worker(args: argparse.Namespace, stack: dict[str, str | None] | None) -> int:
    # Imported here: `voxlane --help` and the other commands need none of the worker.
    from voxlane.core.supervision import LadderConfig
    from voxlane.worker.metrics import MetricsServer, WorkerMetrics
    from voxlane.worker.sip_source import SipCallSource, SipSourceConfig
    from voxlane.worker.synthetic import SyntheticCall, SyntheticCallSource
    from voxlane.worker.worker import Worker, WorkerConfig

    template: SyntheticCall | None = args.script
    source: SipCallSource | SyntheticCallSource
    started: dict[str, Any] = {}
    if args.sip:
        host, port = args.sip
        sip = SipCallSource(
            SipSourceConfig(
                host=host,
                port=port,
                rtp_port_range=args.rtp_ports,
                rtp_timeout_s=args.rtp_timeout,
                allowed_sources=tuple(args.allow) if args.allow else None,
                retry_after_s=args.retry_after,
                providers=args.providers,
                stack=stack,
                llm=template.llm if template is not None else None,
                metadata=dict(template.metadata) if template is not None else {},
            )
        )
        try:
            await sip.open()  # bound now; INVITEs are answered 503 until the worker is ready
        except OSError as exc:
            print(f"voxlane start: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
            return 2
        started["sip"] = f"{sip.host}:{sip.port}"
        source = sip
    else:
        source = SyntheticCallSource(
            concurrency=args.synthetic,
            total=args.synthetic_total,
            call_seconds=args.call_seconds,
            template=template,
        )
    config = WorkerConfig(
        agent_file=args.agent_file,
        reports_dir=args.reports,
        max_jobs=args.max_jobs,
        prewarm=args.prewarm,
        drain_timeout=args.drain_timeout,
        ladder=LadderConfig(job_close_timeout=args.job_close_timeout),
        stop_when_source_done=args.synthetic_total is not None,
        log_format=args.log_format,
        report_mode=args.report_mode,
    )
    metrics = WorkerMetrics()
    worker = Worker(config, source, metrics=metrics)
    server = MetricsServer(metrics, port=args.metrics_port)
    try:
        port = await server.start()
    except OSError as exc:
        await source.aclose()
        print(
            f"voxlane start: cannot serve /metrics on 127.0.0.1:{args.metrics_port}: {exc}",
            file=sys.stderr,
        )
        return 2
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        run = asyncio.ensure_future(worker.run())
        # Announce only a worker that takes calls: the pool is warm and the source serves
        # (/healthz says "starting" and INVITEs get 503 until then). Bounded: the warm-up
        # gives up after spawn_timeout, and a stop() or a failed start ends run.
        ready = asyncio.ensure_future(worker.wait_ready(config.spawn_timeout + 5.0))
        await asyncio.wait({run, ready}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done() and ready.result():
            _print({"event": "started", "metrics_port": port, "max_jobs": args.max_jobs, **started})
        ready.cancel()
        code = await run  # bounded by the worker (drain, then the exit budget)
    finally:
        await server.aclose()
    _print(
        {
            "event": "stopped",
            "jobs": sum(worker.outcomes.values()),
            "outcomes": dict(worker.outcomes),
            "rejected": len(source.rejected),
            "reports": worker.reports_written,
        }
    )
    return code


def _print(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)
