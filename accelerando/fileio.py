"""Atomic file writes: a reader, or a run killed mid-write, never sees half a file.

Every writer of outputs in accelerando (audio, JSON results, manifests, caches) goes through
:func:`atomic_path`: write into a temporary sibling, then ``os.replace`` it over the target.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    Parent folders are created. The file gets the usual ``0o644`` permissions (``mkstemp`` makes ``0o600``).

    Example::

        with atomic_path("out/result.wav", suffix=".wav") as tmp:
            soundfile.write(tmp, samples, 22050)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` (UTF-8, ``\\n`` newlines) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
    return Path(path)
