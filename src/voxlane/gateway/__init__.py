"""voxlane local inference gateway: websocket server hosting real speech engines.

Public API (imported lazily, so ``voxlane.gateway.protocol`` stays cheap for clients)::

    from voxlane.gateway import GatewayConfig, GatewayServer, start_gateway, FaultPlan
    from voxlane.gateway import protocol   # the pure wire codec, shared with the client
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voxlane.gateway.connlog import ConnectionRecord
    from voxlane.gateway.faults import FaultPlan
    from voxlane.gateway.server import (
        GatewayConfig,
        GatewayServer,
        GatewayStatistics,
        start_gateway,
    )

__all__ = [
    "ConnectionRecord",
    "FaultPlan",
    "GatewayConfig",
    "GatewayServer",
    "GatewayStatistics",
    "start_gateway",
]

_WHERE = {
    "ConnectionRecord": "voxlane.gateway.connlog",
    "FaultPlan": "voxlane.gateway.faults",
    "GatewayConfig": "voxlane.gateway.server",
    "GatewayServer": "voxlane.gateway.server",
    "GatewayStatistics": "voxlane.gateway.server",
    "start_gateway": "voxlane.gateway.server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'voxlane.gateway' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
