"""The worker: each call in its own job process under a supervisor (DESIGN I8).

Exports are lazy so that the pure IPC codec (``voxlane.worker.ipc``) imports without
asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Call": "voxlane.worker.source",
    "CallSink": "voxlane.worker.source",
    "CallSource": "voxlane.worker.source",
    "JobContext": "voxlane.worker.context",
    "current_job_context": "voxlane.worker.context",
    "SyntheticCall": "voxlane.worker.synthetic",
    "SyntheticCallSource": "voxlane.worker.synthetic",
    "Worker": "voxlane.worker.worker",
    "WorkerConfig": "voxlane.worker.worker",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'voxlane.worker' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:
    from voxlane.worker.context import JobContext, current_job_context
    from voxlane.worker.source import Call, CallSink, CallSource
    from voxlane.worker.synthetic import SyntheticCall, SyntheticCallSource
    from voxlane.worker.worker import Worker, WorkerConfig
