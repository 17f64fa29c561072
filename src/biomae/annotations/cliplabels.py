"""Clip-label tables and one-label-per-folder layouts: one whole-clip event per audio file.

Tables (``read``), e.g. ESC-50's ``meta/esc50.csv`` (``filename, fold, target, category, esc10,
src_file, take``): the file column (``file_column``, default the first of :data:`FILE_COLUMNS`)
names the clip, the label column (``label_column``, default the first of :data:`LABEL_COLUMNS`)
its label; other columns are kept as extra (string) columns. Each clip is one event from 0 to its
duration, taken from, in order: ``durations`` (file -> s), a ``duration_s`` column, the audio
header under ``audio_dir`` (:func:`biomae.audio.info`), the constant ``duration_s`` (ESC-50: 5.0).
A clip whose duration is unknown is a bad row (named), never guessed.

Folders (``read_folder``): ``root/<label>/<file>`` (e.g. the Watkins marine mammal sound database
by species) gives one event per audio file, label = folder name, recording = the path relative
to ``root``, duration from the header unless ``duration_s`` is given. Files that are not audio
(by suffix) or lie directly in ``root`` are not events; they are listed in
``events.attrs["ignored"]``. Read-only format.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from biomae.annotations.format_helpers import csv_records, finish_events, parse_float, read_text
from biomae.annotations.schema import EventTableError
from biomae.audio import AUDIO_SUFFIXES, info

FILE_COLUMNS = ("filename", "file", "path", "recording", "fname")
LABEL_COLUMNS = ("category", "label", "class", "species", "primary_label")


def _duration(path: Path) -> float:
    return info(path).duration_s


def read(
    path: str | Path,
    *,
    file_column: str | None = None,
    label_column: str | None = None,
    durations: Mapping[str, float] | None = None,
    audio_dir: str | Path | None = None,
    duration_s: float | None = None,
    lenient: bool = False,
) -> pd.DataFrame:
    """Read a clip-label CSV into whole-clip events (``source="cliplabels"``).

    Args:
        path: the CSV (comma-separated, header row).
        file_column: column naming each clip's audio file.
        label_column: column holding each clip's label.
        durations: file -> duration (s).
        audio_dir: folder holding the files, to read durations from their headers.
        duration_s: duration of every clip when nothing else gives it (ESC-50: 5.0).
        lenient: skip bad rows (listed in ``events.attrs["skipped"]``) instead of raising.

    Raises:
        EventTableError: the file or label column cannot be found, or (strict) a bad row, e.g. a
            clip whose duration is unknown.
    """
    where = str(path)
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    header = [h.strip() for h in next(reader, [])]
    lower = {h.lower(): h for h in header}
    file_col = file_column or next((lower[c] for c in FILE_COLUMNS if c in lower), None)
    label_col = label_column or next((lower[c] for c in LABEL_COLUMNS if c in lower), None)
    for what, column in (("file", file_col), ("label", label_col)):
        if column is None or column not in header:
            raise EventTableError(f"{where}:1: no {what} column ({column!r}) in {header}")
    rows, lines, problems = [], [], {}
    for number, cells in csv_records(reader, header):
        name = cells.get(file_col, "")
        row = {h: v for h, v in cells.items() if h not in (file_col, label_col, "duration_s")}
        row |= {"recording": name, "label": cells.get(label_col, ""), "start_s": 0.0}
        try:
            row["end_s"] = _clip_duration(name, cells, durations, audio_dir, duration_s)
        except (ValueError, OSError) as error:
            row["end_s"] = math.nan
            problems[len(rows)] = str(error)
        rows.append(row)
        lines.append(number)
    return finish_events(
        pd.DataFrame(rows),
        lines=lines,
        where=where,
        lenient=lenient,
        problems=problems,
        constant_columns={"source": "cliplabels"},
    )


def _clip_duration(name, cells, durations, audio_dir, duration_s) -> float:
    if durations is not None and name in durations:
        return float(durations[name])
    if cells.get("duration_s", ""):
        return parse_float(cells["duration_s"], "duration_s")
    if audio_dir is not None:
        return _duration(Path(audio_dir) / name)
    if duration_s is not None:
        return float(duration_s)
    raise ValueError(
        f"no duration for clip {name!r}: pass durations=, audio_dir= or duration_s= (ESC-50: 5.0)"
    )


def read_folder(
    root: str | Path,
    *,
    duration_s: float | None = None,
    suffixes: Iterable[str] = AUDIO_SUFFIXES,
    lenient: bool = False,
) -> pd.DataFrame:
    """One whole-clip event per audio file of ``root/<label>/...`` (``source="cliplabels"``).

    Args:
        root: the folder whose sub-folders are labels.
        duration_s: duration of every clip (default: read each file's header).
        suffixes: file endings counted as audio (case-insensitive).
        lenient: skip unreadable files (listed in ``events.attrs["skipped"]``) instead of raising.

    Raises:
        EventTableError: ``root`` is not a folder, or (strict) an unreadable audio header.
    """
    root = Path(root)
    if not root.is_dir():
        raise EventTableError(f"{root}: not a folder")
    suffixes = tuple(s.lower() for s in suffixes)
    rows, places, problems, ignored = [], [], {}, []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if path.suffix.lower() not in suffixes or len(relative.parts) < 2:
            ignored.append(str(relative))
            continue
        row = {"recording": relative.as_posix(), "label": relative.parts[0], "start_s": 0.0}
        try:
            row["end_s"] = _duration(path) if duration_s is None else float(duration_s)
        except (ValueError, OSError, RuntimeError) as error:  # AudioError is a ValueError
            row["end_s"] = math.nan
            problems[len(rows)] = str(error)
        rows.append(row)
        places.append(relative.as_posix())
    events = finish_events(
        pd.DataFrame(rows, columns=["recording", "label", "start_s", "end_s"]),
        lines=places,
        where=str(root),
        lenient=lenient,
        problems=problems,
        constant_columns={"source": "cliplabels"},
    )
    events.attrs["ignored"] = ignored
    return events
