"""Where ``torch.compile`` keeps its compiled kernels: under the data folder, so a restart reuses them.

No torch here: the engine process calls :func:`compile_cache_environment` before it imports torch and diffusers
(importing diffusers already fixes inductor's cache folder, to a temporary one by default).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_FOLDER = ("cache", "torchinductor")
"""Where under the data folder inductor keeps its compiled kernels."""


def compile_cache_environment(data_dir: str | Path) -> Path:
    """Point inductor's on-disk caches at ``<data_dir>/cache/torchinductor`` (unless the owner set
    ``TORCHINDUCTOR_CACHE_DIR``) and switch its FX graph and AOTAutograd caches on. Returns the folder in use."""
    folder = Path(data_dir).resolve().joinpath(*CACHE_FOLDER)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(folder))
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
