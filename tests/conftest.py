"""Every voxlane test runs under the leak check of voxlane's own pytest plugin."""

import pytest


@pytest.fixture(autouse=True)
def _leaks(leak_check: None) -> None:
    return None
