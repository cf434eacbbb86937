"""core/ is pure: it imports nothing from asyncio and reads no clock (a test checks it)."""

import ast
import pathlib
import subprocess
import sys

import voxlane.core

CORE = pathlib.Path(voxlane.core.__file__).parent
FORBIDDEN_MODULES = {"asyncio", "time", "threading", "socket", "selectors", "trio", "anyio"}


def test_core_modules_import_no_asyncio_or_clock() -> None:
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in FORBIDDEN_MODULES, f"{path.name} imports {name}"
                if top == "voxlane":
                    assert name.startswith(("voxlane.core", "voxlane.errors")), (path.name, name)


def test_importing_core_does_not_load_asyncio() -> None:
    code = (
        "import sys; import voxlane.core.states, voxlane.core.scheduling, "
        "voxlane.core.close_plan, voxlane.core.retry, voxlane.core.turns; "
        "print('asyncio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
