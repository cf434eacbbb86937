from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# No hub access here: faster-whisper must read the packaged model only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# gateway_helpers.py: a unique module name, as other test folders may have helpers too.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def tts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated speech lives here for the test session (never committed)."""
    return tmp_path_factory.mktemp("tts")
