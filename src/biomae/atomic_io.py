"""Atomic file output: a reader never sees a half-written file, and Ctrl-C leaves none behind.

- :func:`atomic_path` / :func:`atomic_open`: one file — a temporary beside it, renamed onto it.
- :func:`atomic_paths`: several files written all or none (one recording's tables): every
  temporary is written, then all are fsynced at once (concurrent fsyncs share one journal
  commit), renamed in order, and each folder fsynced once, so after a crash or power loss each
  file is either the old one or the whole new one. A format writer that opens one of these
  temporaries with :func:`atomic_open` / :func:`atomic_path` writes it directly (no temporary of
  the temporary, no fsync of its own: the group's covers it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

_GROUPED: set[str] = set()  # temporaries of an atomic_paths group being written
_SYNC_POOL: ThreadPoolExecutor | None = None
_SYNC_POOL_LOCK = threading.Lock()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``
    (atomic on POSIX).

    On any exception (KeyboardInterrupt included) the temporary file is removed and ``path`` is left
    as it was.
    """
    path = Path(path)
    if str(path) in _GROUPED:  # already a temporary of atomic_paths: it renames and syncs
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; it replaces ``path`` only if the block
    succeeds."""
    if "w" not in mode:
        raise ValueError(f"atomic_open writes only; got mode {mode!r}")
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
        kwargs.setdefault("newline", "")
    grouped = str(Path(path)) in _GROUPED  # atomic_paths syncs the group at once
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle
        handle.flush()
        if not grouped:
            os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Temporary paths beside ``paths``, written by the block; on success all are fsynced at
    once, renamed onto ``paths`` in order (the last renamed last: a reader that sees it sees
    the others) and each folder is fsynced once (the module docstring).

    On any exception (KeyboardInterrupt included) every temporary is removed and ``paths`` are
    left as they were.
    """
    paths = [Path(p) for p in paths]
    temporaries: list[Path] = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
            os.close(fd)
            temporaries.append(Path(tmp))
        _GROUPED.update(map(str, temporaries))
        yield list(temporaries)
        mode = 0o666 & ~_umask()  # mkstemp makes 0600; give the usual permissions
        for tmp in temporaries:
            os.chmod(tmp, mode)
        _fsync_all(temporaries)
        for tmp, path in zip(temporaries, paths, strict=True):
            os.replace(tmp, path)
        _fsync_all(list(dict.fromkeys(path.parent for path in paths)))
    except BaseException:
        for tmp in temporaries:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise
    finally:
        _GROUPED.difference_update(map(str, temporaries))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_all(paths: list[Path]) -> None:
    """fsync every file or folder in ``paths``, concurrently (the file system commits them
    together rather than one journal commit each)."""
    global _SYNC_POOL
    if len(paths) <= 1:
        for path in paths:
            _fsync(path)
        return
    with _SYNC_POOL_LOCK:
        if _SYNC_POOL is None:
            _SYNC_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="biomae-fsync")
    for future in [_SYNC_POOL.submit(_fsync, path) for path in paths]:
        future.result()  # an OSError (disk full, ...) is raised here


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
