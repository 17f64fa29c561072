"""Which recordings a ``biomae annotate`` run covers, and the key their outputs are written under.

Output names (a recording's *key*) depend only on the recording and the input that reached it,
never on which other inputs are given:

- a folder input ``.../siteB`` names its files ``siteB/<path relative to the folder>``
  (``siteB/2024/20240101_000000``), so ``siteA/x.flac`` and ``siteB/x.flac`` never collide,
  and ``biomae annotate siteB`` and ``biomae annotate siteA siteB`` write ``siteB``'s outputs at
  the same place;
- a file input (or a glob's match) ``.../siteB/x.flac`` is named ``siteB/x``, as through its folder;
- the suffix is dropped, unless another audio file with the same stem lies in the same folder:
  ``rec.flac`` and ``rec.aiff`` side by side are ``siteB/rec.flac`` and ``siteB/rec.aiff``;
- two different files that would still get one name (two inputs ``a/siteB`` and ``b/siteB``) stop
  the run before it starts (exit code 2), naming both: annotate their parent folders instead.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from biomae.annotate.files import STATE_DIR, UsageError
from biomae.audio import RECORDING_SUFFIXES


@dataclass
class Recording:
    """An input recording and the key its outputs are written under (module docstring)."""

    path: Path
    key: str  # e.g. "site1/20240101_0500" (no suffix), stable and unique within a run
    resolved: str = ""

    def __post_init__(self) -> None:
        self.resolved = self.resolved or str(self.path.resolve())


def _key(file: Path, root: Path, stems: dict[Path, set[str]]) -> str:
    """``<root folder's name>/<file relative to root>``, suffix kept only if a sibling shares the
    stem."""
    folder = file.parent
    if folder not in stems:
        seen: set[str] = set()
        stems[folder] = clash = set()
        for sibling in folder.iterdir():
            if sibling.suffix.lower() in RECORDING_SUFFIXES:
                (clash if sibling.stem in seen else seen).add(sibling.stem)
    relative = file.relative_to(root)
    if file.stem not in stems[folder]:
        relative = relative.with_suffix("")
    prefix = Path(os.path.abspath(root)).name
    return (Path(prefix) / relative).as_posix() if prefix else relative.as_posix()


def find_recordings(inputs: Iterable[str | os.PathLike]) -> list[Recording]:
    """Expand files, folders (recursive) and globs into recordings with stable, unique keys.

    Raises:
        FileNotFoundError: an input matches nothing (names the input).
        UsageError: a folder holds no audio, or two files would be written under one key.
    """
    found: list[tuple[Path, Path]] = []  # (file, the folder its key is relative to)
    for item in inputs:
        item = str(item)
        path = Path(item)
        if path.is_dir():
            files_in = sorted(p for p in path.rglob("*") if p.suffix.lower() in RECORDING_SUFFIXES)
            files_in = [p for p in files_in if p.is_file() and STATE_DIR not in p.parts]
            if not files_in:
                suffixes = " ".join(sorted(RECORDING_SUFFIXES))
                raise UsageError(f"{item}: no audio files in this folder (looked for {suffixes})")
            found.extend((p, path) for p in files_in)
        elif path.is_file():
            found.append((path, path.parent))
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            found.extend((p, p.parent) for p in matches if p.is_file())
            if not matches:
                raise FileNotFoundError(f"{item}: no file matches this pattern")
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    recordings: list[Recording] = []
    by_key: dict[str, Recording] = {}
    resolved: set[str] = set()
    stems: dict[Path, set[str]] = {}
    for file, root in found:
        rec = Recording(path=file, key=_key(file, root, stems))
        if rec.resolved in resolved:  # the same file named twice (a folder and a glob, say)
            continue
        if rec.key in by_key:
            raise UsageError(
                f"{by_key[rec.key].path} and {file} would both be written as {rec.key!r}; "
                "annotate their parent folders instead (or each into its own --out)"
            )
        resolved.add(rec.resolved)
        by_key[rec.key] = rec
        recordings.append(rec)
    return recordings
