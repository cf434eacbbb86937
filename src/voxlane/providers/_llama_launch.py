"""``python -m voxlane.providers._llama_launch [llama_cpp.server args]``: llama-cpp-python's
OpenAI-compatible server, with llama.cpp's extra weight buffer types turned off.

Why: on CPUs that advertise AMX (recent Xeons, and VMs on them) llama.cpp repacks quantized
weights for its AMX kernels, and generating with SmolLM2's Q4_1 weights then crashes
(SIGSEGV in ``llama_decode``). The plain CPU path is correct everywhere and, for a 135M
model, fast enough. llama-cpp-python does not expose ``use_extra_bufts``, so the default
model parameters are wrapped before the server loads the model.
"""

from __future__ import annotations

import importlib
from typing import Any


def _disable_extra_buffer_types() -> None:
    lib: Any = importlib.import_module("llama_cpp.llama_cpp")

    original = lib.llama_model_default_params

    def default_params() -> Any:
        params = original()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = default_params


def main() -> None:
    _disable_extra_buffer_types()
    # imported by name: typed or not, whether installed or not, mypy sees the same thing
    server: Any = importlib.import_module("llama_cpp.server.__main__")
    server.main()


if __name__ == "__main__":
    main()
