"""The ``shared`` adapter: the project's real-data folder (``../shared/data``), read from its index.

The folder documents itself in three CSVs under ``index/`` (paths relative to the folder):

- ``files.csv``: one row per recording — ``source, file, duration_s, sr, channels, annotation
  (full | partial | none), task, taxon, regions`` (JSON list of exhaustively annotated
  ``[start_s, end_s]`` spans), ``license, note, duplicate_of`` (the file this one duplicates).
- ``events.csv``: one row per event — ``source, file, onset_s, offset_s, low_hz, high_hz, label,
  taxon, note``.
- ``clips.csv``: clip-labelled recordings — ``source, file, duration_s, sr, label, taxon, note,
  license``; each becomes one event spanning the clip (annotation status ``"clip"``).

The index's ``source`` becomes the recordings' and events' ``source`` column (the dataset column is
``shared``); duplicates are kept and flagged through ``duplicate_of``. ``individual`` is derived
from file names where the source encodes the bird (Bengalese and zebra finches), so that splits by
individual keep one bird's song out of two splits.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from biomae.annotations import make_events
from biomae.datasets.registry import DatasetAdapter, LayoutError, register

SHARED_LAYOUT = """\
ROOT/
  index/files.csv, index/events.csv, index/clips.csv
  audio/...        the recordings the index names (paths relative to ROOT)"""
_FILES_COLUMNS = ("source", "file", "annotation", "taxon", "regions", "license", "note")


def _read(path: Path, needed: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise LayoutError(f"missing index file {path}\nexpected layout:\n{SHARED_LAYOUT}")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise LayoutError(f"{path}: missing column(s) {absent}; has {list(table.columns)}")
    return table


def _individual(source: str, file: str) -> str:
    """The individual bird a file records, where its name says so ("" otherwise)."""
    name = Path(file).name
    if source == "koumura_bird0":
        return "Bird0"
    if source == "bfsongrepo":
        return name.split("_", 1)[0]
    match = re.match(r"(?:bengalese|zebra)_finch_([A-Za-z0-9]+)", name)
    return match.group(1) if match else ""


def _regions(text: str, where: str) -> list[list[float]]:
    try:
        regions = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as err:
        raise LayoutError(
            f"{where}: regions {text!r} is not a JSON list of [start_s, end_s]"
        ) from err
    if not isinstance(regions, list) or any(len(r) != 2 or r[1] < r[0] for r in regions):
        raise LayoutError(
            f"{where}: regions {text!r} must be [[start_s, end_s], ...], start <= end"
        )
    return [[float(a), float(b)] for a, b in regions]


def convert(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recordings and events of the shared data folder at ``root`` (see module docstring)."""
    files = _read(root / "index" / "files.csv", _FILES_COLUMNS)
    events = _read(root / "index" / "events.csv", ("source", "file", "onset_s", "offset_s"))
    clips = _read(root / "index" / "clips.csv", ("source", "file", "duration_s", "label"))
    missing = [f for f in pd.concat([files["file"], clips["file"]]) if not (root / f).is_file()]
    if missing:
        raise LayoutError(f"{len(missing)} indexed audio file(s) missing, e.g. {root / missing[0]}")
    files_csv = root / "index" / "files.csv"
    repeated = files.duplicated()
    if repeated.any():  # an identical row twice says nothing new: keep one, and say so
        lines = ", ".join(str(i + 2) for i in np.flatnonzero(repeated.to_numpy()))
        warnings.warn(
            f"{files_csv}: line(s) {lines} repeat an earlier row; kept once", stacklevel=2
        )
        files = files[~repeated].reset_index(drop=True)
    duplicate = files.get("duplicate_of", pd.Series([""] * len(files)))
    recordings = pd.DataFrame(
        {
            "path": [str(root / f) for f in files["file"]],
            "source": files["source"],
            "annotation": files["annotation"],
            "regions": [
                _regions(r, f"{files_csv}:{i + 2}") for i, r in enumerate(files["regions"])
            ],
            "taxon": files["taxon"],
            "individual": [
                _individual(s, f) for s, f in zip(files["source"], files["file"], strict=False)
            ],
            "license": files["license"],
            "note": files["note"],
            "duplicate_of": [str(root / d) if d.strip() else "" for d in duplicate],
        }
    )
    clip_recordings = pd.DataFrame(
        {
            "path": [str(root / f) for f in clips["file"]],
            "source": clips["source"],
            "annotation": "clip",
            "regions": [[] for _ in range(len(clips))],
            "taxon": clips.get("taxon", ""),
            "individual": "",
            "label": clips["label"],
            "license": clips.get("license", ""),
            "note": clips.get("note", ""),
            "duplicate_of": "",
        }
    )
    recordings = pd.concat([recordings, clip_recordings], ignore_index=True)
    numbers = {c: pd.to_numeric(events[c]) for c in ("onset_s", "offset_s", "low_hz", "high_hz")}
    table = make_events(
        {
            "recording": [str(root / f) for f in events["file"]],
            "start_s": numbers["onset_s"],
            "end_s": numbers["offset_s"],
            "low_hz": numbers["low_hz"],
            "high_hz": numbers["high_hz"],
            "label": events["label"],
            "taxon": events["taxon"],
            "source": events["source"],
            "note": events["note"],
        }
    )
    clip_events = make_events(
        {
            "recording": [str(root / f) for f in clips["file"]],
            "start_s": 0.0,
            "end_s": pd.to_numeric(clips["duration_s"]),
            "label": clips["label"],
            "taxon": clips.get("taxon", ""),
            "source": clips["source"],
            "note": "clip label",
        }
    )
    return recordings, make_events(pd.concat([table, clip_events], ignore_index=True))


register(
    DatasetAdapter(
        name="shared",
        title="biomae's shared real-data folder (many small public sources)",
        citation="see the folder's README.md: cite each source",
        license="per source (column 'license'); some sources are research-use only",
        taxa="birds, frogs, bats, fish, mammals, insects (see index/files.csv)",
        url="../shared/data/README.md",
        annotation_format="index CSVs",
        layout=SHARED_LAYOUT,
        task="detection",
        convert=convert,
        note="the index's 'source' column names the original dataset of each row",
    )
)
