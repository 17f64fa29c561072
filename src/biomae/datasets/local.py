"""``biomae data add``: a local folder of recordings with annotation files beside them.

**Matching rule**: an audio file and an annotation file in the same folder pair when their names
agree once the format's suffix (the format module's ``SUFFIX``: ``.selections.txt`` for Raven, which
also accepts Raven's own ``NAME.Table.N.selections.txt``; ``.not.mat`` for evsonganaly, ...) and
then one audio extension (``.wav``, ``.flac``, ``.cbin``, ...) are removed from each. So ``a.wav``
pairs with ``a.selections.txt``, and evsonganaly's ``a.wav.not.mat`` / ``a.cbin.not.mat`` pair with
``a.wav``, ``a.cbin.flac`` or ``a.flac``. Audio without an annotation file is registered as
unlabeled (annotation ``"none"``) and a warning lists it; annotation files in the given folders
that pair with no audio are listed in a warning too (they are not added). A recording with an
annotation file counts as fully annotated. Adding again replaces the rows of the same (dataset,
path) and keeps the rest of the dataset.

An event that ends past the end of its recording stops the import, naming the annotation file and
its line; with ``lenient=True`` it is clipped to the recording's end (one that starts at or after
the end is skipped), and each such row is listed as ``file:line: what was done``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from pathlib import Path

import pandas as pd

from biomae.annotations import EventTableError, make_events
from biomae.datasets.catalog import Catalog, ImportSummary

_END_TOLERANCE_S = 1e-3  # as biomae.annotations.validate_events: an event may end 1 ms late
_LISTED = 5  # file names quoted in a warning before "..."


def import_paths(
    catalog: Catalog,
    paths: list[str | Path],
    fmt: str,
    *,
    dataset: str = "local",
    lenient: bool = False,
) -> ImportSummary:
    """Add audio files (or folders of them, searched recursively) to ``catalog`` under
    ``dataset``, each with its annotation file of format ``fmt`` (see the module docstring).
    A malformed annotation row, or an event past the end of its recording, raises (naming file
    and line); ``lenient=True`` skips (or clips) it and lists it in the summary's ``skipped``.

    Raises:
        FileNotFoundError: a path that is neither an audio file nor a folder, or no audio at all.
        ValueError: two annotation files of the format pair with one audio file.
    """
    from biomae.annotations import read_annotations
    from biomae.datasets.registry import AUDIO_SUFFIXES, audio_files

    pattern = _annotation_pattern(fmt)
    audio: list[Path] = []
    folders: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            audio += audio_files(given.resolve())
            folders.append(given.resolve())
        elif given.is_file() and given.suffix.lower() in AUDIO_SUFFIXES:
            audio.append(given.resolve())
        else:
            raise FileNotFoundError(
                f"{given}: not an audio file ({', '.join(AUDIO_SUFFIXES)}) or folder"
            )
    if not audio:
        raise FileNotFoundError(f"no audio files in {', '.join(map(str, paths))}")
    annotations = _annotation_files(audio, folders, pattern)
    statuses, tables, skipped, clipped, used = [], [], [], [], set()
    for path in audio:
        matches = annotations.get((path.parent, _key(path.name)), [])
        if len(matches) > 1:
            raise ValueError(
                f"{path}: {len(matches)} {fmt} annotation files pair with it "
                f"({', '.join(m.name for m in matches)}); keep one"
            )
        statuses.append("full" if matches else "none")
        if matches:
            used.add(matches[0])
            events = read_annotations(matches[0], fmt, lenient=lenient)
            skipped += events.attrs.get("skipped", [])
            events, late_skipped, late_clipped = _within_recording(
                events, matches[0], path, lenient
            )
            skipped += late_skipped
            clipped += late_clipped
            events["recording"] = str(path)
            tables.append(events)
    _warn_unpaired(audio, statuses, annotations, used, fmt)
    recordings = pd.DataFrame({"path": [str(p) for p in audio], "annotation": statuses})
    events = make_events(pd.concat(tables, ignore_index=True)) if tables else make_events([])
    summary = catalog.add(dataset, recordings, events, replace="paths")
    return replace(summary, skipped=tuple(skipped), clipped=tuple(clipped))


def _annotation_pattern(fmt: str) -> re.Pattern:
    """A regex matching the end of an annotation file name of ``fmt`` (the suffix)."""
    from biomae.annotations import format_module

    suffix = getattr(format_module(fmt), "SUFFIX", "") or ".txt"
    alternatives = [re.escape(suffix)]
    if fmt == "raven":
        alternatives.append(r"\.Table\.\d+\.selections\.txt")
    return re.compile(f"({'|'.join(alternatives)})$", re.IGNORECASE)


def _key(name: str, pattern: re.Pattern | None = None) -> str:
    """The pairing key of a file name: the annotation suffix (when ``pattern`` is given), then up
    to two audio extensions removed (``a.cbin.flac`` and ``a.wav.not.mat`` both give ``a``)."""
    from biomae.datasets.registry import AUDIO_SUFFIXES

    if pattern is not None:
        name = pattern.sub("", name)
    for _ in range(2):
        stem, dot, ext = name.rpartition(".")
        if dot and stem and f".{ext.lower()}" in AUDIO_SUFFIXES:
            name = stem
    return name


def _annotation_files(
    audio: list[Path], folders: list[Path], pattern: re.Pattern
) -> dict[tuple[Path, str], list[Path]]:
    """(folder, key) -> annotation files of the format there, over the audio files' folders and
    every folder given (searched recursively)."""
    places = {p.parent for p in audio}
    for folder in folders:
        places |= {p for p in folder.rglob("*") if p.is_dir()} | {folder}
    found: dict[tuple[Path, str], list[Path]] = {}
    for place in sorted(places):
        for file in sorted(place.iterdir()):
            if file.is_file() and pattern.search(file.name):
                found.setdefault((place, _key(file.name, pattern)), []).append(file)
    return found


def _warn_unpaired(audio, statuses, annotations, used, fmt: str) -> None:
    """Warn about audio without an annotation file and annotation files without audio."""
    bare = [p for p, s in zip(audio, statuses, strict=True) if s == "none"]
    if bare:
        names = ", ".join(p.name for p in bare[:_LISTED]) + (", ..." if len(bare) > _LISTED else "")
        warnings.warn(
            f"{len(bare)} of {len(audio)} recording(s) have no {fmt} annotation file beside them "
            f"and are added as unlabeled: {names}",
            stacklevel=3,
        )
    lone = sorted({f for files in annotations.values() for f in files} - used)
    if lone:
        names = ", ".join(str(f) for f in lone[:_LISTED]) + (", ..." if len(lone) > _LISTED else "")
        warnings.warn(
            f"{len(lone)} {fmt} annotation file(s) pair with no audio file and are not added: "
            f"{names}",
            stacklevel=3,
        )


def _within_recording(
    events: pd.DataFrame, table: Path, audio_path: Path, lenient: bool
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Events clipped to the recording's end (lenient), with the rows skipped and clipped
    (``file:line: why``), or an error naming ``table``'s line."""
    from biomae import audio as audio_io

    duration_s = audio_io.info(audio_path).duration_s
    late = (events["end_s"] > duration_s + _END_TOLERANCE_S).to_numpy()
    if not late.any():
        return events, [], []
    lines = events.attrs.get("lines") or []
    if len(lines) != len(events):  # a reader that does not report lines
        lines = [f"row {i + 1}" for i in range(len(events))]
    events = events.copy()
    if "note" not in events:
        events["note"] = ""
    skipped, clipped, drop = [], [], []
    for i in late.nonzero()[0]:
        start_s, end_s = events["start_s"].iloc[i], events["end_s"].iloc[i]
        where = f"{table}:{lines[i]}: end_s={end_s:g} is after the end of {audio_path.name}"
        if not lenient:
            more = int(late.sum()) - 1
            raise EventTableError(
                f"{where} ({duration_s:g} s)"
                + (f" (and {more} more such row(s))" if more else "")
                + "; pass --lenient (lenient=True) to clip such events to the recording's end"
            )
        if start_s >= duration_s:
            skipped.append(f"{where} ({duration_s:g} s) and so is its start")
            drop.append(i)
            continue
        clipped.append(f"{where} ({duration_s:g} s): clipped to {duration_s:g} s")
        events.iloc[i, events.columns.get_loc("end_s")] = duration_s
        old = str(events["note"].iloc[i] or "")
        note = f"end_s {end_s:g} clipped to the recording's end {duration_s:g}"
        events.iloc[i, events.columns.get_loc("note")] = f"{old}; {note}" if old else note
    events = events.drop(index=events.index[drop]).reset_index(drop=True)
    return events, skipped, clipped
