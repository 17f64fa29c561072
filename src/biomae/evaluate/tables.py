"""Read prediction and reference tables from files or folders and pair them by recording.

Pairing rule: every row gets a *recording key*, the base name of its ``recording`` (or, when a
reader leaves it empty, of its annotation file) with one annotation suffix and then one audio
extension removed (:func:`recording_key`). So BirdNET's ``X.BirdNET.selection.table.txt``, a human
``X.Table.1.selections.txt``, ``X.wav.TextGrid`` and a CSV row naming ``dir/X.wav`` all score
recording ``X``. When one single file is scored against one single file and each holds one
recording, they are paired whatever their names. An empty table still declares its recording (the
key of its file name): nothing annotated there means every prediction there is a false positive.

Detector tables: where a reader leaves every label empty (or every score NaN) but the table has a
column of :data:`LABEL_FALLBACKS` (or :data:`SCORE_FALLBACKS`), e.g. BirdNET's ``Common Name`` and
``Confidence``, that column is used; ``--pred-option label_column=...`` picks another label column.

Formats are guessed, when not given, from the suffix and, for ``.txt`` / ``.csv`` / ``.json``, the
first line (see :func:`guess_format`). In a folder, every file (recursively, sorted, hidden ones
and audio excluded) whose format can be guessed, or whose suffix fits the given format, is read;
the others are listed as skipped, never dropped silently. A file that fits but does not parse is
an error naming the file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from biomae.annotations import (
    EVENT_COLUMNS,
    FORMATS,
    concat_events,
    make_events,
    read_annotations,
)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aif", ".aiff", ".m4a", ".aac", ".wv")
_ANNOTATION_SUFFIXES = (  # regexes, tried as one alternation anchored at the end of the name
    r"\.birdnet\.selection\.table\.txt",
    r"\.birdnet\.results\.(csv|txt|json)",
    r"\.table\.\d+\.selections\.txt",
    r"\.selections?\.txt",
    r"\.selection\.table\.txt",
    r"\.audacity\.txt",
    r"\.birdnet\.selection\.table",  # readers that name the recording after the table
    r"\.table\.\d+\.selections",
    r"\.selections?",
    r"\.not\.mat",
    r"\.textgrid",
    r"\.(txt|csv|tsv|json|xml|parquet|phn|wrd|mat)",
)
_ANNOTATION_SUFFIX = re.compile(f"({'|'.join(_ANNOTATION_SUFFIXES)})$", re.IGNORECASE)
# detector columns used when a reader leaves every label empty / every score NaN (BirdNET tables)
LABEL_FALLBACKS = ("Common Name", "Species Code", "Scientific Name")
SCORE_FALLBACKS = ("Confidence", "confidence")
# the file suffixes each format is read from in folders when the format is given
FORMAT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "raven": (".txt",),
    "audacity": (".txt",),
    "csv": (".csv", ".tsv"),
    "parquet": (".parquet",),
    "textgrid": (".textgrid",),
    "koumura": (".xml",),
    "notmat": (".mat",),
    "whisperseg": (".json",),
    "aoef": (".json",),
    "dcase": (".csv",),
    "birdvox": (".csv",),
    "rfcx": (".csv",),
    "cliplabels": (".csv",),
    "timit": (".phn", ".wrd"),
}


def recording_key(name: str) -> str:
    """The pairing key of a recording or annotation file name (see the module docstring)."""
    base = re.split(r"[\\/]", str(name).strip())[-1]
    base = _ANNOTATION_SUFFIX.sub("", base)
    for suffix in AUDIO_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def guess_format(path: Path) -> str | None:
    """A format name of :data:`biomae.annotations.FORMATS` for ``path``, or None if unsure."""
    name = path.name.lower()
    by_suffix = {".parquet": "parquet", ".textgrid": "textgrid", ".xml": "koumura", ".phn": "timit"}
    by_suffix |= {".wrd": "timit", ".mat": "notmat"}
    if path.suffix.lower() in by_suffix:
        return by_suffix[path.suffix.lower()]
    if path.suffix.lower() not in (".txt", ".csv", ".tsv", ".json"):
        return None
    with open(path, encoding="utf-8", errors="replace") as handle:
        head = handle.read(4096)
    first = head.splitlines()[0] if head.strip() else ""
    if name.endswith(".json"):
        return "whisperseg" if '"onset"' in head else "aoef"
    if name.endswith(".txt"):
        if "Begin Time" in first or first.startswith("Selection\t"):
            return "raven"
        cells = first.split("\t")
        if len(cells) >= 2 and all(_is_number(c) for c in cells[:2]):
            return "audacity"
        return None
    if "Audiofilename" in first and "Starttime" in first:
        return "dcase"
    return "csv" if "start_s" in first else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass
class TableSet:
    """Events read from one path, with keys normalised, and what was read or skipped.

    Attributes:
        events: canonical table whose ``recording`` column holds recording keys.
        recordings: every recording key declared (including those of empty tables).
        files: the files read; skipped: files passed over, with the reason.
        single_file: the path given was one file (not a folder).
    """

    events: pd.DataFrame
    recordings: list[str]
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    single_file: bool = False


def _tool_columns(events: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Fill label and score from a detector's own columns where the reader left them empty."""
    if (events["label"] == "").all():
        for name in LABEL_FALLBACKS:
            if name in events.columns:
                events["label"] = events[name].fillna("").astype(str)
                break
    if events["score"].isna().all():
        for name in SCORE_FALLBACKS:
            if name in events.columns:
                score = pd.to_numeric(events[name], errors="coerce").astype(float)
                bad = score.isna() | (score < 0) | (score > 1)
                if bad.any():
                    i = int(bad.to_numpy().nonzero()[0][0])
                    raise ValueError(
                        f"{path}: row {i}: column {name!r} holds {events[name].iloc[i]!r}, "
                        "not a score in [0, 1]"
                    )
                events["score"] = score
                break
    return events


def _read_file(path: Path, fmt: str | None, options: Mapping[str, str]) -> tuple[pd.DataFrame, str]:
    fmt = fmt or guess_format(path)
    if fmt is None:
        raise ValueError(
            f"{path}: cannot guess the annotation format; pass it (one of {sorted(FORMATS)})"
        )
    try:
        events = read_annotations(path, fmt, **options)
    except ModuleNotFoundError as err:
        raise ValueError(
            f"{path}: the {fmt!r} reader is not available in this install ({err})"
        ) from err
    if list(events.columns[: len(EVENT_COLUMNS)]) != list(EVENT_COLUMNS):
        events = make_events(events)
    events = _tool_columns(events.copy(), path)
    file_key = recording_key(path.name)
    names = events["recording"].astype(str)
    events["recording"] = [recording_key(n) if n else file_key for n in names]
    return events, file_key


def read_tables(
    path: str | Path, fmt: str | None = None, options: Mapping[str, str] | None = None
) -> TableSet:
    """Read one annotation file, or every annotation file under a folder (see the module docstring).

    Args:
        path: a file or a folder.
        fmt: a format name of ``biomae.annotations.FORMATS``; guessed per file when None.
        options: passed to the reader (e.g. ``label_column`` for Raven).

    Raises:
        FileNotFoundError: ``path`` does not exist. ValueError: no annotation file in a folder, or a
        file that cannot be read (the message names it).
    """
    path, options = Path(path), dict(options or {})
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown annotation format {fmt!r}; known: {', '.join(sorted(FORMATS))}")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file():
        events, file_key = _read_file(path, fmt, options)
        recordings = sorted(set(events["recording"])) if len(events) else [file_key]
        return TableSet(events, recordings, [path], single_file=True)
    tables, recordings, files, skipped = [], set(), [], []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path)
        if any(part.startswith(".") for part in rel.parts) or file.suffix.lower() in AUDIO_SUFFIXES:
            continue
        if fmt is not None and file.suffix.lower() not in FORMAT_SUFFIXES.get(fmt, ()):
            skipped.append(f"{file}: suffix does not fit format {fmt!r}")
            continue
        if fmt is None and guess_format(file) is None:
            skipped.append(f"{file}: format not recognised")
            continue
        events, file_key = _read_file(file, fmt, options)
        tables.append(events)
        recordings |= set(events["recording"]) if len(events) else {file_key}
        files.append(file)
    if not files:
        raise ValueError(f"{path}: no annotation file found ({len(skipped)} file(s) skipped)")
    return TableSet(concat_events(tables), sorted(recordings), files, skipped)


def pair_single(pred: TableSet, ref: TableSet) -> TableSet:
    """Give a one-recording prediction *file* the recording of a one-recording reference *file*."""
    single = pred.single_file and ref.single_file
    if single and len(pred.recordings) == len(ref.recordings) == 1:
        key = ref.recordings[0]
        events = pred.events.copy()
        events["recording"] = key
        return TableSet(events, [key], pred.files, pred.skipped, single_file=True)
    return pred


def read_label_map(path: str | Path) -> dict[str, str]:
    """A label map CSV with header ``from,to``: each ``from`` label is replaced by ``to``."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"from", "to"} <= set(rows[0]):
        raise ValueError(f"{path}: a label map needs the header 'from,to' and at least one row")
    mapping: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        if row["from"] in mapping and mapping[row["from"]] != row["to"]:
            raise ValueError(f"{path}: line {line}: label {row['from']!r} is mapped twice")
        mapping[row["from"]] = row["to"]
    return mapping


def apply_label_map(events: pd.DataFrame, mapping: Mapping[str, str]) -> pd.DataFrame:
    """Replace labels found in ``mapping``; other labels are kept as they are."""
    events = events.copy()
    events["label"] = [mapping.get(label, label) for label in events["label"]]
    return events


def read_regions(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Annotated regions from a CSV with header ``recording,start_s,end_s`` (keys normalised)."""
    table = pd.read_csv(path, dtype={"recording": str})
    missing = {"recording", "start_s", "end_s"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: regions CSV lacks column(s) {sorted(missing)}")
    regions: dict[str, list[tuple[float, float]]] = {}
    for line, row in enumerate(table.itertuples(index=False), start=2):
        if not 0 <= row.start_s <= row.end_s:
            raise ValueError(
                f"{path}: line {line}: need 0 <= start_s <= end_s; got {row.start_s}, {row.end_s}"
            )
        regions.setdefault(recording_key(row.recording), []).append(
            (float(row.start_s), float(row.end_s))
        )
    return regions
