"""What ``biomae annotate`` keeps on disk: the manifest, ``run.json`` and its settings check, each
recording's outputs (all formats or none), the run's tables, and leftover temporary files.

Every error raised while *writing* becomes :class:`OutputError` (disk full, permissions lost,
...), never a recording's error: the run stops and names the path (see :mod:`biomae.annotate`).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import time
from pathlib import Path

import pandas as pd

from biomae import __version__
from biomae.annotations import concat_events, format_module, output_suffixes, write_annotations
from biomae.atomic_io import atomic_open, atomic_paths, atomic_write_text

STATE_DIR = ".biomae"  # per-recording canonical tables, used to resume and to merge the run's table
RUN_FILES = ("run.json", "summary.csv", "errors.csv", "events.csv", "events.parquet")
SUMMARY_COLUMNS = [
    "key",
    "path",
    "status",
    "detector",
    "n_events",
    "duration_s",
    "sample_rate",
    "channels",
    "warning",
    "seconds",
    "skipped",
    "error",
]
INT_COLUMNS = ("n_events", "sample_rate", "channels")
# atomic_io.atomic_path's temporary files: ".{name}.{8 random characters from mkstemp}.part"
_TEMP = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.part$")


class UsageError(ValueError):
    """The run cannot start as asked (exit code 2); the message names the thing and the fix."""


class OutputError(RuntimeError):
    """An output could not be written (disk full, permissions, ...): the run stops (exit code 3)."""


@contextlib.contextmanager
def writing(path: Path):
    """Turn an ``OSError`` raised while writing ``path`` into :class:`OutputError`."""
    try:
        yield
    except OSError as err:
        reason = err.strerror or str(err)
        where = err.filename or path
        raise OutputError(
            f"cannot write {where} ({reason}); free space or choose another --out, then rerun "
            "to resume (what was written is kept)"
        ) from err


def check_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` and prove it writable, or raise :class:`UsageError` naming it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file, not a folder; give a folder for --out")
    try:
        (out_dir / STATE_DIR).mkdir(parents=True, exist_ok=True)
        with atomic_open(out_dir / STATE_DIR / "write-check") as handle:
            handle.write("ok\n")
    except OSError as err:
        raise UsageError(
            f"--out {out_dir}: cannot write there ({err.strerror or err}); choose a writable folder"
        ) from None


def _is_our_temp(name: str) -> bool:
    match = _TEMP.match(name)
    if not match:
        return False
    target = match["target"]
    if target.endswith(".part"):  # a writer's temporary of our temporary
        return _is_our_temp(target)
    ours = (*output_suffixes().values(), ".png", ".parquet", "write-check")
    return target in RUN_FILES or target.endswith(ours)


def remove_stale_temporaries(out_dir: Path) -> list[Path]:
    """Delete the temporary files a killed run left in ``out_dir`` (only ours: hidden names
    ``.{output}.{random}.part`` of the outputs annotate writes); returns those removed."""
    removed = []
    for path in out_dir.rglob(".*.part"):
        if path.is_file() and _is_our_temp(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# --- manifest ------------------------------------------------------------------------------------


def read_manifests(out_dir: Path) -> dict[str, dict]:
    """The last entry per recording (by resolved path) over every rank's ``manifest*.jsonl``; a
    torn last line (a killed run) and entries of older biomae versions (no ``resolved``) are
    ignored."""
    entries: dict[str, dict] = {}
    for path in sorted(out_dir.glob("manifest*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and "resolved" in entry:
                entries[entry["resolved"]] = entry
    return entries


def append_manifest(path: Path, entry: dict) -> None:
    """Append one finished recording to the manifest (flushed and fsynced)."""
    with writing(path), open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


# --- run.json and the settings check ----------------------------------------------------------


def _flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        flat: dict[str, object] = {}
        for key, item in value.items():
            flat |= _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return flat
    return {prefix: value}


# Settings that change how fast a run goes, never its results: a rerun may change them. runtime:
# torch or the model's fp32 ONNX graph give the same events, frame scores within 1e-4
# (tests/test_export.py); run.json files written before it was recorded lack it.
SPEED_ONLY = ("batch_size", "num_workers", "runtime")


def settings_changes(old: dict, new: dict) -> list[str]:
    """``"name: old -> new"`` for every setting that differs between two ``run.json`` settings
    (:data:`SPEED_ONLY` settings left out)."""
    old_flat = _flatten(json.loads(json.dumps(old, default=str)))
    new_flat = _flatten(json.loads(json.dumps(new, default=str)))
    missing = object()
    changes = []
    for name in sorted(old_flat.keys() | new_flat.keys()):
        if name.rsplit(".", 1)[-1] in SPEED_ONLY:
            continue
        before, after = old_flat.get(name, missing), new_flat.get(name, missing)
        if before != after:
            shown = ["(none)" if v is missing else json.dumps(v) for v in (before, after)]
            changes.append(f"{name}: {shown[0]} -> {shown[1]}")
    return changes


def read_run_json(out_dir: Path) -> dict | None:
    path = out_dir / "run.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{path} is not valid JSON; rerun with --overwrite to redo") from None


def check_settings(out_dir: Path, settings: dict, has_results: bool) -> list[str]:
    """Raise :class:`UsageError` when ``out_dir`` holds results made with other settings;
    returns the inputs of the earlier runs (kept in ``run.json``)."""
    old = read_run_json(out_dir)
    if old is None or not has_results:
        return []
    previous = {"detector": old.get("detector"), "annotate": old.get("annotate")}
    changes = settings_changes(previous, settings)
    if changes:
        raise UsageError(
            f"{out_dir} holds results made with other settings ({'; '.join(changes)}); rerun with "
            "--overwrite to redo every recording with the new settings, or choose another --out"
        )
    return list(old.get("inputs", []))


def write_run_json(out_dir: Path, inputs: list[str], settings: dict, n_recordings: int, world_size):
    document = {
        "biomae_version": __version__,
        "inputs": inputs,
        "n_recordings": n_recordings,
        "world_size": world_size,
        **settings,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with writing(out_dir / "run.json"):
        atomic_write_text(out_dir / "run.json", json.dumps(document, indent=2, default=str))


# --- one recording's outputs ------------------------------------------------------------------


def output_paths(out_dir: Path, key: str, formats) -> list[Path]:
    """The tables of one recording (its state table last: present means all are)."""
    suffixes = output_suffixes()  # declared by each format module
    paths = [out_dir / (key + suffixes[f]) for f in formats]
    return [*paths, out_dir / STATE_DIR / (key + ".parquet")]


def write_tables(out_dir: Path, key: str, events: pd.DataFrame, formats, info) -> None:
    """Write every format of one recording, or none (:func:`biomae.atomic_io.atomic_paths`: all
    written to temporary files, fsynced together, renamed with the state table last, one folder
    fsync). A writer's own error (ValueError, ...) propagates with nothing written; an OSError
    becomes :class:`OutputError`."""
    paths = [*output_paths(out_dir, key, formats)]  # the state table last
    with writing(out_dir / key), atomic_paths(paths) as temporaries:
        for fmt, tmp in zip(formats, temporaries, strict=False):
            wanted = getattr(format_module(fmt), "WRITE_OPTIONS", ())
            options = {name: getattr(info, name) for name in wanted}  # from the audio header
            write_annotations(events, tmp, fmt, **options)
        write_annotations(events, temporaries[-1], "parquet")


def remove_outputs(out_dir: Path, key: str) -> None:
    """Remove one recording's tables and pictures (a failed redo must not leave old results that
    the run's tables no longer list)."""
    for path in output_paths(out_dir, key, output_suffixes()):
        path.unlink(missing_ok=True)
    stem = out_dir / key
    pictures = [Path(f"{stem}.png"), *stem.parent.glob(f"{glob.escape(stem.name)}.page*.png")]
    for path in pictures:
        path.unlink(missing_ok=True)


# --- the run's tables -------------------------------------------------------------------------


def write_run_tables(
    out_dir: Path, entries: list[dict], tables: dict[str, pd.DataFrame] | None = None
) -> pd.DataFrame:
    """summary.csv, errors.csv and the run's combined event table, from the per-recording state
    (``tables``: events by key already in memory, as written to the state tables)."""
    tables = tables or {}
    summary = pd.DataFrame(entries, columns=SUMMARY_COLUMNS)
    for column in INT_COLUMNS:  # nullable: an error row has no sample rate, never "16000.0"
        summary[column] = pd.to_numeric(summary[column]).astype("Int64")
    summary["skipped"] = summary["skipped"].astype("boolean")
    with writing(out_dir / "summary.csv"), atomic_open(out_dir / "summary.csv") as handle:
        summary.to_csv(handle, index=False)
    errors = summary.loc[summary["status"] == "error", ["path", "error"]]
    with writing(out_dir / "errors.csv"), atomic_open(out_dir / "errors.csv") as handle:
        errors.to_csv(handle, index=False)
    done = []
    for entry in entries:
        state = out_dir / STATE_DIR / (entry["key"] + ".parquet")
        if entry["status"] == "done" and entry["key"] in tables:
            done.append(tables[entry["key"]])
        elif entry["status"] == "done" and state.exists():
            done.append(pd.read_parquet(state))
    events = concat_events(done)
    with writing(out_dir / "events.csv"):
        write_annotations(events, out_dir / "events.csv", "csv")
        write_annotations(events, out_dir / "events.parquet", "parquet")
    return summary
