"""Writing a file so that readers see the old one or the new one, never a part (state files, build
outputs, reports): a module of its own, so that commands which only write state do not import the
build and its templates."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(target: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file created with `mode` from the start, then rename over `target`.

    Readers see the old file or the new one, never a part; a link at `target` is replaced, not
    written through. No fsync: build outputs can be regenerated, and syncing thousands of files
    would dominate the build time."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
