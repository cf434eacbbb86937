"""Every ``voxlane`` mistake is one line on stderr and exit status 2, never a traceback
(issue 10, item 10): each case runs the real command as a process."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from voxlane.cli import options as opt
from voxlane.cli.main import build_parser, main
from voxlane.errors import VoxlaneError

ROOT = Path(__file__).resolve().parents[1]
AGENT = str(ROOT / "examples" / "receptionist.py")


def voxlane(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxlane.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *expected: str) -> str:
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err, proc.stdout)
    assert "Traceback" not in err and "Traceback" not in proc.stdout
    assert err.endswith("\n") and err.count("\n") == 1, err
    for text in expected:
        assert text in err, err
    return err


def _wav(path: Path, tag: int, bits: int, data: bytes = b"\0" * 64) -> Path:
    fmt = struct.pack("<HHIIHH", tag, 1, 8000, 8000 * bits // 8, bits // 8, bits)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
    path.write_bytes(
        b"RIFF"
        + struct.pack("<I", len(body) + 4 + len(data))
        + body
        + struct.pack("<I", len(data))
        + data
    )
    return path


# (argv, what the one line must say). The list, each as a real process:
MISTAKES: list[tuple[list[str], list[str]]] = [
    (["sip", "--port", "99999", AGENT], ["voxlane sip: error:", "--port", "99999"]),
    (["sip", "--rtp-ports", "abc", AGENT], ["--rtp-ports", "'abc' is not a port range"]),
    (["sip", "--rtp-ports", "5000-4000", AGENT], ["LOW must be below HIGH"]),
    (["sip", "--allow", "notacidr", AGENT], ["--allow", "'notacidr' is not an address"]),
    (["sip", "--close-timeout", "-1", AGENT], ["--close-timeout", "-1 must be 0 or more"]),
    (
        ["start", AGENT, "--reports", "r", "--synthetic", "1", "--script", "{'llm': []}"],
        ["--script", "inline script: not valid JSON"],
    ),
    (["console", "--input", "missing.wav"], ["--input", "missing.wav: no such file"]),
]
# ... and every other kind of option, through main() in this process (the same parser).
MORE_MISTAKES: list[tuple[list[str], list[str]]] = [
    (["sip", "--host", "example.invalid", AGENT], ["--host", "is not an IP address"]),
    (["sip", "--max-calls", "0", AGENT], ["--max-calls", "at least 1"]),
    (["sip", "--retry-after", "86401", AGENT], ["--retry-after", "at most 86400"]),
    (["sip", "--retry-after", "soon", AGENT], ["--retry-after", "not a whole number"]),
    (["sip", "--rtp-timeout", "nan", AGENT], ["--rtp-timeout", "is not a number"]),
    (["sip", "--report-mode", "0644x", AGENT], ["--report-mode", "not an octal file mode"]),
    (["sip", "--report-mode", "0400", AGENT], ["the owner must keep read and write"]),
    (["sip", "missing_agent.py"], ["argument agent", "missing_agent.py: no such file"]),
    (["sip", "--gateway", "http://x", AGENT], ["--gateway", "is not a gateway URL"]),
    (["sip", "--gateway", "ws://127.0.0.1:1", AGENT], ["--gateway needs --api-key"]),
    (["start", AGENT, "--reports", "r", "--sip", "127.0.0.1:99999"], ["--sip", "99999"]),
    (["start", AGENT, "--reports", "r", "--sip", "nohost"], ["is not HOST:PORT"]),
    (
        ["start", AGENT, "--reports", "r", "--synthetic", "1", "--script", '{"llm": [{"x": 1}]}'],
        ["inline script: llm[0]: unknown key(s) x"],
    ),
    (
        ["start", AGENT, "--reports", "r", "--synthetic", "1", "--script", "nope.json"],
        ["--script", "nope.json: no such file"],
    ),
    (
        ["start", AGENT, "--reports", "r", "--synthetic", "1", "--metrics-port", "-5"],
        ["--metrics-port"],
    ),
    (
        ["start", AGENT, "--reports", "r", "--synthetic", "1", "--drain-timeout", "-1"],
        ["--drain-timeout", "must be 0 or more"],
    ),
    (["start", AGENT, "--reports", "r", "--synthetic", "0"], ["--synthetic", "at least 1"]),
    (["start", AGENT, "--reports", "r"], ["voxlane start: choose one call source"]),
    (["start", AGENT], ["the following arguments are required: --reports"]),
    (["--log-level", "LOUD", "start"], ["voxlane: error:", "is not a log level"]),
    (["demo", "--out", str(ROOT / "README.md")], ["--out", "is not a directory"]),
    (["nosuchcommand"], ["invalid choice"]),
]


def _ids(cases: list[tuple[list[str], list[str]]]) -> list[str]:
    return [" ".join(a for a in argv[:3] if a != AGENT) for argv, _ in cases]


@pytest.mark.parametrize(("argv", "expected"), MISTAKES, ids=_ids(MISTAKES))
def test_a_mistake_is_one_line_and_exit_2(
    tmp_path: Path, argv: list[str], expected: list[str]
) -> None:
    argv = [str(tmp_path / "r") if a == "r" else a for a in argv]
    assert_one_line_error(voxlane(*argv), *expected)


@pytest.mark.parametrize(("argv", "expected"), MORE_MISTAKES, ids=_ids(MORE_MISTAKES))
def test_every_option_is_checked_when_parsed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    argv: list[str],
    expected: list[str],
) -> None:
    monkeypatch.chdir(ROOT)
    argv = [str(tmp_path / "r") if a == "r" else a for a in argv]
    code = main(argv)
    captured = capsys.readouterr()
    assert_one_line_error(
        subprocess.CompletedProcess(argv, code, captured.out, captured.err), *expected
    )


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.wav", b"", "empty file, not a WAV file"),
        (
            "song.mp3",
            b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff" * 200,
            "not a WAV file (an MP3 file)",
        ),
        ("cut.wav", b"RIFF\x24\x00\x00\x00WA", "truncated WAV file"),
        ("silent.wav", None, "the WAV file has no audio"),
        ("half.wav", "float16", "16-bit float is not supported"),
        ("alaw.wav", "alaw", "A-law (format 0x0006) is not supported"),
    ],
)
def test_a_wav_that_cannot_be_read_is_refused_by_name(
    tmp_path: Path, name: str, content: bytes | str | None, problem: str
) -> None:
    path = tmp_path / name
    if content is None:
        _wav(path, 1, 16, data=b"")
    elif content == "float16":
        _wav(path, 3, 16)
    elif content == "alaw":
        _wav(path, 6, 8)
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    proc = voxlane("console", "--input", str(path), "--llm", "scripted")
    assert_one_line_error(proc, "voxlane console: error: argument --input:", f"{path}: {problem}")


def test_a_float_or_24_bit_wav_is_accepted(tmp_path: Path) -> None:
    """What ``wave`` refused (``unknown format: 3``) is parsed: the reader converts it."""
    for tag, bits in ((3, 32), (3, 64), (1, 24), (1, 8)):
        path = _wav(tmp_path / f"in_{tag}_{bits}.wav", tag, bits, data=b"\0" * (bits // 8) * 80)
        args = build_parser().parse_args(["console", "--input", str(path), "--agent", AGENT])
        assert args.input == path


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        proc = voxlane("sip", "--port", str(port), "--reports", str(tmp_path), AGENT)
    err = assert_one_line_error(proc, "voxlane sip: error:")
    assert "in use" in err.lower(), err
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = voxlane(
            "start",
            AGENT,
            "--reports",
            str(tmp_path),
            "--synthetic",
            "1",
            "--metrics-port",
            str(port),
        )
    assert_one_line_error(proc, "voxlane start: cannot serve /metrics", str(port))


def test_an_error_reaching_main_is_one_line_and_debug_shows_it(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    import voxlane.cli.start

    def boom(args: Any) -> int:
        raise VoxlaneError("the thing broke\nbadly")

    monkeypatch.setattr(voxlane.cli.start, "run_start", boom)
    argv = ["start", AGENT, "--reports", str(tmp_path), "--synthetic", "1"]
    monkeypatch.delenv("VOXLANE_DEBUG", raising=False)
    assert main(argv) == 2
    assert capsys.readouterr().err == "voxlane start: error: the thing broke badly\n"
    with pytest.raises(VoxlaneError):
        main(["--debug", *argv])
    monkeypatch.setenv("VOXLANE_DEBUG", "1")
    with pytest.raises(VoxlaneError):
        main(argv)
    monkeypatch.setattr(voxlane.cli.start, "run_start", lambda args: (tmp_path / "x/y").stat())
    monkeypatch.setenv("VOXLANE_DEBUG", "0")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("voxlane start: error: [Errno 2] No such file") and err.count("\n") == 1


def test_help_still_works() -> None:
    proc = voxlane("start", "-h")
    assert proc.returncode == 0 and "--report-mode" in proc.stdout and "FILE|JSON" in proc.stdout


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        (opt.port, "0", 0),
        (opt.port, "65535", 65535),
        (opt.port_range, "40000-40999", (40000, 40999)),
        (opt.cidr, "10.0.0.0/8", "10.0.0.0/8"),
        (opt.cidr, "192.0.2.7", "192.0.2.7/32"),
        (opt.cidr, "2001:db8::/32", "2001:db8::/32"),
        (opt.cidr, "10.1.2.3/8", "10.0.0.0/8"),
        (opt.host_port, "[::1]:5060", ("::1", 5060)),
        (opt.host_port, "127.0.0.1:0", ("127.0.0.1", 0)),
        (opt.file_mode, "0600", 0o600),
        (opt.file_mode, "640", 0o640),
        (opt.file_mode, "0o660", 0o660),
        (opt.non_negative_float, "0", 0.0),
        (opt.gateway_url, "ws://127.0.0.1:8790/", "ws://127.0.0.1:8790"),
        (opt.log_level, "info", "INFO"),
    ],
)
def test_what_the_options_accept(kind: Any, text: str, value: object) -> None:
    assert kind(text) == value


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (opt.port, "-1"),
        (opt.port, "65536"),
        (opt.port, "http"),
        (opt.port_range, "0-10"),
        (opt.port_range, "10-70000"),
        (opt.port_range, "5000"),
        (opt.port_range, "4000-4000"),
        (opt.positive_float, "0"),
        (opt.positive_float, "inf"),
        (opt.non_negative_float, "-0.1"),
        (opt.positive_int, "1.5"),
        (opt.file_mode, "0700"),
        (opt.file_mode, "9"),
        (opt.file_mode, "0200"),
        (opt.gateway_url, "ws://host"),
        (opt.gateway_url, "ws://h:1/v1/stt"),
        (opt.host_port, "127.0.0.1"),
        (opt.cidr, "10.0.0.0/33"),
    ],
)
def test_what_the_options_refuse(kind: Any, text: str) -> None:
    with pytest.raises(opt.Bad) as err:
        kind(text)
    assert "\n" not in str(err.value)
