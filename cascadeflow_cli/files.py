"""Writing an output file whole: to a temporary name beside it, renamed into place once
complete, so an interrupted write never leaves a truncated file behind.

Only a regular file (or a path that does not exist yet) can be replaced that way. A FIFO,
a terminal or a device (``--output /dev/null``, ``/dev/stdout``) is written into
directly: renaming over it replaced the node itself, and as root ``--output /dev/null``
turned /dev/null into a regular file holding the ledger. A symlink is followed, so the
file it points to is replaced and the link stays a link.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def is_special(path: Path) -> bool:
    """Whether ``path`` (symlinks followed) exists and is not a regular file or a directory."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def written_whole(path: Path, mode: str = "w", **open_args: Any) -> Iterator[IO[Any]]:
    """A file object for ``path``: a temporary file renamed over it when the block ends
    without an error (removed otherwise), or ``path`` itself when it is a FIFO or a device.
    OSError from opening, writing or renaming propagates (the caller words it)."""
    if is_special(path):
        with open(path, mode, **open_args) as fh:
            yield fh
        return
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    partial = target.with_name(f".{target.name}.partial")
    fh = open(partial, mode, **open_args)  # noqa: SIM115  (closed below, before the rename)
    try:
        with fh:
            yield fh
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
