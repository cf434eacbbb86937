"""The package graph points one way (DESIGN §3): an explicit map of which top-level unit of
voxlane may import which, checked over every import of every module under src/voxlane —
module level, inside functions (lazy imports) and under ``if TYPE_CHECKING:`` alike.

A unit is a subpackage (``voice``, ``transports``, ...) or a leaf module (``errors``,
``media``, ``chat``, ``resample``, ``wav``, ``room``); ``voxlane`` is the package's own
``__init__`` (the public facade). A failure names the module, the line and the import.
"""

from __future__ import annotations

import ast
import itertools
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass

import voxlane

SRC = pathlib.Path(voxlane.__file__).parent

_BASE = {"errors"}
_MEDIA = _BASE | {"media"}
_DATA = _MEDIA | {"chat", "resample", "wav", "room"}

# unit -> the units it may import (directly). Read bottom-up: nothing imports what is above
# it, so the map is acyclic (a test checks that too).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "media": {"errors"},
    "chat": {"errors"},
    "resample": {"media", "errors"},
    "wav": {"resample", "media", "errors"},  # the one WAV reader
    "room": {"media", "errors"},  # the Room and AudioOutput contracts
    "core": {"errors"},  # pure decisions (tests/core/test_purity.py: no asyncio either)
    "aio": {"errors", "core"},
    "gateway": {"aio", "core"} | _MEDIA | {"resample", "wav"},
    "providers": {"aio", "core", "gateway"} | _MEDIA | {"chat", "resample"},
    "transports": {"room", "aio", "core", "resample"} | _MEDIA,
    "voice": {"room", "aio", "core", "providers", "chat"} | _MEDIA,
    "testing": {"voice", "transports", "providers", "aio", "core"} | _DATA,
    "runners": {"testing", "voice", "transports", "providers", "gateway", "aio", "core"} | _DATA,
    "worker": {"runners", "testing", "voice", "transports", "providers", "aio", "core"} | _DATA,
    "cli": set(),  # filled below: everything
    "voxlane": {"voice", "transports", "core"} | _DATA,  # the facade: src/voxlane/__init__.py
}
ALLOWED["cli"] = set(ALLOWED) - {"cli", "voxlane"}

# Where a unit may import another only in part: providers use the gateway's wire codecs
# (pure, synchronous), never its server.
ONLY: dict[tuple[str, str], set[str]] = {
    ("providers", "gateway"): {"voxlane.gateway.protocol", "voxlane.gateway.tts_protocol"},
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. voxlane.voice.session
    line: int
    target: str  # the imported module, e.g. voxlane.room

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.target}"


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "voxlane"


def is_module(name: str) -> bool:
    rel = SRC.parent.joinpath(*name.split("."))
    return rel.with_suffix(".py").is_file() or (rel / "__init__.py").is_file()


def imports_of(path: pathlib.Path, module: str | None = None) -> Iterator[Import]:
    """Every module ``path`` (the module ``module``, by default named by its place under
    src/) imports. ``from pkg import mod`` counts as ``pkg.mod`` when ``mod`` is a module,
    so a unit's submodule is seen, not just its package."""
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            targets = {f"{source}.{a.name}" for a in node.names}
            for target in sorted({t if is_module(t) else source for t in targets}):
                yield Import(module, node.lineno, target)
        elif isinstance(node, ast.Dict):
            # Lazy exports: {"Name": "voxlane.x.y", ...}, imported by importlib on access.
            values = [v.value for v in node.values if isinstance(v, ast.Constant)]
            if values and len(values) == len(node.values) and all(
                isinstance(v, str) and v.startswith("voxlane.") and is_module(v) for v in values
            ):
                for v in values:
                    yield Import(module, node.lineno, v)


def is_voxlane(imp: Import) -> bool:
    return imp.target == "voxlane" or imp.target.startswith("voxlane.")


def all_imports() -> list[Import]:
    found = [imp for path in sorted(SRC.rglob("*.py")) for imp in imports_of(path)]
    found = [imp for imp in found if is_voxlane(imp)]
    assert len(found) > 300, "the scan found too few imports: is it looking at src/voxlane?"
    return found


def unit_edges(imports: list[Import]) -> dict[tuple[str, str], list[Import]]:
    edges: dict[tuple[str, str], list[Import]] = {}
    for imp in imports:
        src, dst = unit_of(imp.module), unit_of(imp.target)
        if src != dst:
            edges.setdefault((src, dst), []).append(imp)
    return edges


def violations(imports: list[Import]) -> list[str]:
    """One line per import against ALLOWED / ONLY, naming the module and the import."""
    edges = unit_edges(imports)
    bad = [
        f"{src} may not import {dst}: {imp}"
        for (src, dst), imps in edges.items()
        if dst not in ALLOWED[src]
        for imp in imps
    ]
    bad += [
        f"{src} may import only {', '.join(sorted(only))} of {dst}: {imp}"
        for (src, dst), only in ONLY.items()
        for imp in edges.get((src, dst), [])
        if imp.target not in only
    ]
    return bad


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_every_unit_is_in_the_map() -> None:
    units = {unit_of(module_name(p)) for p in SRC.rglob("*.py")}
    assert units - set(ALLOWED) == set(), "a new unit: add it to ALLOWED (and docs/architecture.md)"
    assert set(ALLOWED) - units == set(), "ALLOWED names a unit that no longer exists"


def test_the_allowed_map_is_acyclic() -> None:
    assert find_cycle(ALLOWED) is None


def test_every_import_follows_the_allowed_map() -> None:
    bad = violations(all_imports())
    assert not bad, "imports against the package graph:\n" + "\n".join(bad)


def test_no_two_units_import_each_other() -> None:
    edges = unit_edges(all_imports())
    graph: dict[str, set[str]] = {}
    for src, dst in edges:
        graph.setdefault(src, set()).add(dst)
    cycle = find_cycle(graph)
    if cycle:
        where = [str(edges[(a, b)][0]) for a, b in itertools.pairwise(cycle)]
        raise AssertionError(f"units import each other: {' -> '.join(cycle)}\n" + "\n".join(where))


def test_the_rules_the_map_exists_for() -> None:
    """Spelled out, so an edit to ALLOWED cannot quietly undo them (DESIGN §3)."""
    assert "transports" not in ALLOWED["voice"]
    assert not {"voice", "runners", "worker", "cli"} & ALLOWED["transports"]
    assert not {"cli"} & set().union(*(v for k, v in ALLOWED.items() if k != "cli"))
    assert not {"worker", "cli"} & ALLOWED["runners"]
    assert ALLOWED["room"] <= {"media", "errors"}


def test_the_scan_sees_every_kind_of_import(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .speech import SpeechHandle\n"
        "if TYPE_CHECKING:\n"
        "    from voxlane.transports.local import LocalRoom\n"
        "def later() -> None:\n"
        "    import voxlane.cli.main\n"
        "_EXPORTS = {'Room': 'voxlane.room'}\n"
    )
    seen = {(i.line, i.target) for i in imports_of(path, "voxlane.voice.probe") if is_voxlane(i)}
    assert seen == {
        (2, "voxlane.voice.speech"),
        (4, "voxlane.transports.local"),
        (6, "voxlane.cli.main"),
        (7, "voxlane.room"),
    }


def test_a_violation_names_the_module_and_the_import() -> None:
    bad = violations(
        [
            Import("voxlane.voice.probe", 4, "voxlane.transports.local"),
            Import("voxlane.providers.probe", 9, "voxlane.gateway.server"),
            Import("voxlane.providers.probe", 10, "voxlane.gateway.protocol"),
        ]
    )
    assert bad == [
        "voice may not import transports: "
        "voxlane.voice.probe (line 4) imports voxlane.transports.local",
        "providers may import only voxlane.gateway.protocol, voxlane.gateway.tts_protocol "
        "of gateway: voxlane.providers.probe (line 9) imports voxlane.gateway.server",
    ]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_modules_that_run_agents_have_no_import_cycle() -> None:
    """Within voice/ and core/ every module imports only modules below it (agents and tools
    see the session through the ``voice.api`` protocol, not the session class)."""
    for package in ("voxlane.voice", "voxlane.core"):
        graph: dict[str, set[str]] = {}
        for imp in all_imports():
            inside = imp.module.startswith(package + ".") and imp.target.startswith(package + ".")
            if inside and imp.module != imp.target:
                graph.setdefault(imp.module, set()).add(imp.target)
        assert graph, package
        cycle = find_cycle(graph)
        assert cycle is None, f"modules import each other: {' -> '.join(cycle or [])}"
