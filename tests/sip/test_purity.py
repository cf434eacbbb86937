"""The sans-I/O layer stays pure: no asyncio, sockets, threads or clock reads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import voxlane.transports.sip as sip_pkg

PACKAGE_DIR = Path(sip_pkg.__file__).parent
# The asyncio layer on top of the pure modules (it may import asyncio; the pure ones never
# import it, and importing the package does not load it).
IO_MODULES = {"udp", "rtp_io", "room"}
ALL_MODULES = sorted(PACKAGE_DIR.glob("*.py"))
MODULES = [p for p in ALL_MODULES if p.stem not in IO_MODULES]
FORBIDDEN_IMPORTS = {
    "asyncio",
    "socket",
    "selectors",
    "threading",
    "time",
    "datetime",
    "concurrent",
    "multiprocessing",
    "subprocess",
    "os",
    "audioop",
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_every_module_is_scanned() -> None:
    names = {p.stem for p in MODULES}
    assert {"message", "headers", "sdp", "g711", "rtp", "dialog", "endpoint"} <= names


def test_no_forbidden_imports() -> None:
    for path in MODULES:
        bad = imported_roots(path) & FORBIDDEN_IMPORTS
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_io_modules_do_not_leak_into_pure_ones() -> None:
    for path in MODULES:
        local = {n.module for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module}
        assert not local & IO_MODULES, f"{path.name} imports the asyncio layer"


def test_modules_stay_small() -> None:
    for path in ALL_MODULES:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 600, f"{path.name} has {lines} lines"


def test_importing_the_package_does_not_load_asyncio() -> None:
    names = ", ".join(f"voxlane.transports.sip.{p.stem}" for p in MODULES if p.stem != "__init__")
    code = (
        "import sys\n"
        f"import voxlane.transports.sip, {names}\n"
        "loaded = [m for m in ('asyncio', 'socket', 'threading') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "", f"loaded: {result.stdout.strip()}"
