"""``python -m voxlane.gateway``: ready line, per-connection logs, SIGTERM -> exit 0."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys

from helpers import API_KEY, client, create, drain_until_closed, run, silence, stream


def test_cli_serves_and_sigterm_closes_sessions_and_exits_0() -> None:
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
                os.kill(proc.pid, signal.SIGTERM)
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
