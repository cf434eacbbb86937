"""``python -m voxlane.gateway``: ready line, per-connection logs, SIGTERM -> exit 0."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys

import pytest
from gateway_helpers import API_KEY, client, create, drain_until_closed, run, silence, stream


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_cli_serves_and_a_signal_closes_sessions_and_exits_0(signum: int) -> None:
    async def main() -> tuple[int | None, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "voxlane.gateway",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            "--idle-timeout",
            "30",
            "--stt-engine",
            "pocketsphinx",
            "--max-sessions",
            "2",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        try:
            assert proc.stdout is not None and proc.stderr is not None
            async with asyncio.timeout(30):
                line = (await proc.stdout.readline()).decode()
            match = re.fullmatch(r"listening on (ws://127\.0\.0\.1:\d+)\n", line)
            assert match, line
            async with client(match.group(1) + "/v1/stt") as ws:
                await create(ws)
                await stream(ws, silence(0.2))
                os.kill(proc.pid, signum)
                events = await drain_until_closed(ws)
                assert events == [{"type": "session.closed"}]
                assert ws.close_code == 1000
            async with asyncio.timeout(10):
                code = await proc.wait()
            stderr = (await proc.stderr.read()).decode()
            return code, stderr
        finally:
            if proc.returncode is None:
                proc.kill()  # by PID, only the process this test started
                await proc.wait()

    code, stderr = run(main())
    assert code == 0, stderr
    assert re.search(r"conn 1: session stt_\d+ created", stderr), stderr
    assert "reason=server_shutdown" in stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--port", "99999"], "argument --port: must be 0..65535, not 99999"),
        (["--port", "abc"], "argument --port: not a whole number: 'abc'"),
        (["--idle-timeout", "nan"], "argument --idle-timeout: must be a number > 0"),
        (["--send-timeout", "0"], "argument --send-timeout: must be a number > 0"),
        (["--handshake-timeout", "-1"], "argument --handshake-timeout: must be a number > 0"),
        (["--handshake-timeout", "x"], "argument --handshake-timeout: not a number: 'x'"),
        (["--max-sessions", "0"], "argument --max-sessions: must be >= 1, not 0"),
        (["--max-tts-sessions", "1.5"], "argument --max-tts-sessions: not a whole number"),
        (["--max-connections", "-3"], "argument --max-connections: must be >= 1, not -3"),
        (["--max-connections-per-client", "0"], "--max-connections-per-client: must be >= 1"),
        (["--failed-handshake-burst", "x"], "--failed-handshake-burst: not a whole number"),
        (["--failed-handshake-rate", "inf"], "--failed-handshake-rate: must be a number > 0"),
        (["--failed-handshake-rate", "-1"], "--failed-handshake-rate: must be a number > 0"),
        (["--engine-processes", "-1"], "argument --engine-processes: must be >= 0, not -1"),
        (["--log-level", "loud"], "argument --log-level: invalid choice"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    ],
)
def test_bad_option_values_are_one_line_and_exit_2(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from voxlane.gateway.cli import main

    assert main(["--api-key", API_KEY, *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("voxlane gateway: error: "), err
    assert says in err, err


def test_missing_api_key_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from voxlane.gateway.cli import main

    monkeypatch.delenv("VOXLANE_GATEWAY_API_KEY", raising=False)
    assert main(["--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "voxlane gateway: error: --api-key (or VOXLANE_GATEWAY_API_KEY) is required\n"


@pytest.mark.parametrize("source", ["option", "environment"])
def test_an_api_key_that_is_not_printable_ascii_is_one_line_and_exit_2(source: str) -> None:
    """A key with a character above U+00FF once became "?" in the expected header, so
    ``Bearer ????`` got in. Such a key is refused before anything listens, from
    ``--api-key`` and from ``$VOXLANE_GATEWAY_API_KEY`` alike. (A subprocess: if the key
    were accepted the gateway would serve until killed, here by the timeout.)"""
    key = "ключ€€"
    args = [sys.executable, "-m", "voxlane.gateway", "--port", "0"]
    env = {k: v for k, v in os.environ.items() if k != "VOXLANE_GATEWAY_API_KEY"}
    if source == "option":
        args += ["--api-key", key]
    else:
        env["VOXLANE_GATEWAY_API_KEY"] = key
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == (
        "voxlane gateway: error: --api-key (or VOXLANE_GATEWAY_API_KEY) must be printable "
        "ASCII without spaces (character 1 of 6 is not)\n"
    )
