"""Building a tiny model's folder in a temporary sibling and renaming it into place.

An interrupted build never leaves a half-written folder that looks complete, and when another process finishes
the same build first, its folder is kept and this one is discarded.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


def build_into_place(target: Path, build: Callable[[Path], object], is_complete: Callable[[Path], bool]) -> Path:
    """Run ``build`` on a temporary folder beside ``target`` and rename it to ``target``, replacing an incomplete
    folder found there; ``target`` as it is when another process completed it in the meantime. Returns ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        build(staging)
        if target.exists():
            if is_complete(target):
                logger.debug("%s appeared during the build; keeping it", target)
                return target
            logger.warning("replacing the incomplete folder %s", target)
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".stale", dir=target.parent))
            os.replace(target, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:  # a concurrent build renamed its folder into place between the check and the rename
            if is_complete(target):
                return target
            raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
