"""Load a user's agent from a Python file: a ``create_agent()`` function, or the one
``Agent`` subclass the file defines."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

from voxlane.voice.agent import Agent


class AgentFileError(Exception):
    """The file could not be loaded or defines no usable agent."""


def load_agent_factory(path: Path) -> Callable[[], Agent]:
    if not path.is_file():
        raise AgentFileError(f"agent file not found: {path}")
    name = f"voxlane_user_agent_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AgentFileError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise AgentFileError(f"{path}: {type(exc).__name__}: {exc}") from exc
    factory = getattr(module, "create_agent", None)
    if callable(factory):
        return factory  # type: ignore[no-any-return]
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Agent) and obj.__module__ == name
    ]
    if len(classes) != 1:
        raise AgentFileError(
            f"{path}: define create_agent() or exactly one Agent subclass "
            f"(found {[c.__name__ for c in classes]})"
        )
    return classes[0]
