"""Long fuzz campaigns against voxlane's parsers and servers (``make test`` runs short ones).

Targets:

* ``sip``: mutated SIP datagrams (INVITE/ACK/BYE/OPTIONS, SDP bodies) into the SIP message
  parser, the SDP parser and ``SipEndpointCore`` on virtual time
  (``voxlane.testing.fuzz_sip.run_sip_campaign``); pure, no sockets.
* ``gateway``: garbage and mutated websocket frames on ``/v1/stt`` and ``/v1/tts`` of a real
  gateway process (``python -m voxlane.gateway``, started here on a free loopback port)
  (``voxlane.testing.fuzz_ws.run_ws_campaign``); afterwards the gateway's stderr must hold
  no ERROR record and no traceback, and it must still serve a valid client.

Every case is derived from ``(seed, index)``: a failure prints its index, and
``--seed S --cases N`` replays the campaign. ``--json`` prints exactly one JSON object.
Exit status 1 when any invariant broke.

    python bench/fuzz.py [--targets sip,gateway] [--cases 20000] [--seed 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Any

from voxlane.testing.fuzz import FuzzFailure, FuzzReport

TARGETS = ("sip", "gateway")
API_KEY = "fuzz-key"
STARTUP_TIMEOUT_S = 60.0  # the gateway loads its STT model before it listens


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def targets(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = sorted(set(names) - set(TARGETS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"targets are {', '.join(TARGETS)}; got {text!r}")
    return names


def run_sip(seed: int, cases: int) -> FuzzReport:
    from voxlane.testing.fuzz_sip import run_sip_campaign

    return run_sip_campaign(seed, cases)


def start_gateway(stderr: IO[str]) -> tuple[subprocess.Popen[str], str]:
    """A gateway process on a free loopback port; returns it and its websocket URL. Its log
    goes to ``stderr`` (a file: a pipe nobody reads fills up and blocks the gateway)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voxlane.gateway",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            "--log-level",
            "info",
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    # Bounded: a gateway that never says "listening on ws://HOST:PORT" is killed, which
    # ends the readline with EOF.
    watchdog = threading.Timer(STARTUP_TIMEOUT_S, proc.kill)
    watchdog.start()
    try:
        line = proc.stdout.readline().strip()
    finally:
        watchdog.cancel()
    if not line.startswith("listening on "):
        stop_gateway(proc)
        raise SystemExit(f"fuzz: the gateway did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def stop_gateway(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, bounded wait, then SIGKILL (only the process this script started)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=5)


def run_gateway(seed: int, cases: int) -> FuzzReport:
    from voxlane.testing.fuzz_ws import run_ws_campaign

    with tempfile.TemporaryFile("w+") as log:
        proc, url = start_gateway(log)
        try:
            report = asyncio.run(run_ws_campaign(url, seed, cases, api_key=API_KEY))
        finally:
            stop_gateway(proc)
        log.seek(0)
        stderr = log.read()
    bad = [ln for ln in stderr.splitlines() if " ERROR " in ln or "Traceback" in ln]
    if bad:
        report.failures.append(FuzzFailure(-1, b"", f"gateway stderr: {bad[0][:300]}"))
    if proc.returncode != 0:
        report.failures.append(FuzzFailure(-1, b"", f"gateway exited {proc.returncode}"))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--targets", type=targets, default=list(TARGETS))
    parser.add_argument("--cases", type=positive_int, default=20000, help="per target")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runners = {"sip": run_sip, "gateway": run_gateway}
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    for name in args.targets:
        report = runners[name](args.seed, args.cases)
        results.append(report.as_dict())
        if not args.json:
            status = "ok" if report.ok else f"{len(report.failures)} FAILURE(S)"
            print(f"{name:8} {report.cases:7d} cases  {report.seconds:7.1f} s  {status}")
            for f in report.failures[:20]:
                print(f"    case {f.index}: {f.error}")
    total = {"targets": results, "seconds": round(time.monotonic() - started, 1)}
    if args.json:
        print(json.dumps(total))
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
