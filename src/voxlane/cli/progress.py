"""How the CLI shows a runner's progress messages: dimmed, on a rich console."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape


def dim_progress(console: Console) -> Callable[[str], None]:
    """A ``progress`` callback (e.g. for :func:`voxlane.runners.stack.local_stack`) that
    prints each message dimmed on ``console``."""

    def show(message: str) -> None:
        console.print(f"[dim]{escape(message)}[/]")

    return show
