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
an error naming the file. A folder in which one recording's events come from more than one file (a
per-recording table beside a run-wide one, say) is refused: summing them would count every event
twice.

A ``biomae annotate`` output folder (``run.json`` or ``manifest*.jsonl`` beside its ``.biomae``
state) is recognised and its predictions are read once, from the per-recording state tables of the
recordings its ``summary.csv`` lists as done (each such recording is declared, empty or not); the
recordings that failed in the run are listed as skipped, with their error.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from biomae.annotate import STATE_DIR
from biomae.annotations import (
    EVENT_COLUMNS,
    FORMATS,
    concat_events,
    make_events,
    read_annotations,
)
from biomae.audio import RECORDING_SUFFIXES

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
    for suffix in RECORDING_SUFFIXES:
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
    if is_annotate_output(path):
        return read_annotate_output(path)
    tables, recordings, files, skipped = [], set(), [], []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path)
        if (
            any(part.startswith(".") for part in rel.parts)
            or file.suffix.lower() in RECORDING_SUFFIXES
        ):
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
    _refuse_repeated_recordings(path, tables, files)
    return TableSet(concat_events(tables), sorted(recordings), files, skipped)


def _refuse_repeated_recordings(folder: Path, tables: list[pd.DataFrame], files: list) -> None:
    """Raise if one recording key has events in more than one of ``files`` (it would be summed)."""
    sources: dict[str, list] = {}
    for events, file in zip(tables, files, strict=True):
        for key in sorted(set(events["recording"])):
            sources.setdefault(key, []).append(file)
    repeated = {key: where for key, where in sources.items() if len(where) > 1}
    if repeated:
        key, where = next(iter(repeated.items()))
        raise ValueError(
            f"{folder}: {len(repeated)} recording(s) have events in more than one file, e.g. "
            f"{key!r} in {', '.join(str(f) for f in where[:3])}; scoring them all would count "
            "those events more than once. Point --pred/--ref at one file, or at a folder holding "
            "one table per recording (or pass --pred-format/--ref-format to read only one kind)"
        )


def is_annotate_output(folder: Path) -> bool:
    """Whether ``folder`` is a ``biomae annotate`` output folder (its ``.biomae`` state beside a
    ``run.json`` or a manifest)."""

    marked = (folder / "run.json").is_file() or any(folder.glob("manifest*.jsonl"))
    return marked and (folder / STATE_DIR).is_dir()


def read_annotate_output(folder: Path) -> TableSet:
    """Read the predictions of a ``biomae annotate`` output folder once (see the module docstring).

    Raises:
        ValueError: the run lists no recording, a done recording's state table is missing, or two
            recordings share a recording key (same file name in two sub-folders).
    """

    entries = _annotate_entries(folder)
    tables, recordings, files, skipped = [], {}, [], []
    for entry in entries:
        key, status = str(entry["key"]), str(entry["status"])
        if status != "done":
            skipped.append(f"{entry['path']}: failed in the annotate run ({entry.get('error')})")
            continue
        state = folder / STATE_DIR / f"{key}.parquet"
        if not state.is_file():
            raise ValueError(
                f"{state}: missing, though {folder} lists recording {key!r} as done; "
                "rerun `biomae annotate` on the same inputs and --out to rebuild it"
            )
        events = make_events(pd.read_parquet(state))
        name = recording_key(key)
        events["recording"] = name
        if name in recordings:
            raise ValueError(
                f"{folder}: recordings {recordings[name]!r} and {key!r} share the name {name!r}, "
                "and evaluate matches recordings by name; score each sub-folder's tables apart"
            )
        recordings[name] = key
        tables.append(events)
        files.append(state)
    if not entries:
        raise ValueError(f"{folder}: an annotate output folder with no recording in it")
    return TableSet(concat_events(tables), sorted(recordings), files, skipped)


def _annotate_entries(folder: Path) -> list[dict]:
    """The run's recordings (key, path, status, error): ``summary.csv``, else the manifests (a run
    that was interrupted before writing its summary)."""
    summary = folder / "summary.csv"
    if summary.is_file():
        table = pd.read_csv(summary, dtype={"key": str, "path": str, "error": str})
        return table.fillna({"error": ""}).to_dict("records")
    entries: dict[str, dict] = {}  # the last line per key; a torn last line (a crash) is ignored
    for manifest in sorted(folder.glob("manifest*.jsonl")):
        for line in manifest.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                entry = json.loads(line)
                entries[entry["key"]] = entry
    return list(entries.values())


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
