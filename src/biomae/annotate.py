"""``biomae annotate``: folders of recordings in, event tables (and pictures) out — resumably.

For every recording found under the inputs (files, folders searched recursively, globs) a detector
returns an event table, written in each chosen format under ``out_dir`` at the recording's path
relative to its input folder. Beside them:

- ``run.json`` — the run's parameters (detector settings, formats, inputs, biomae version);
- ``manifest.jsonl`` — one line per finished recording (done or error), appended as each ends:
  a rerun skips the recordings listed as done whose outputs exist (``overwrite=True`` redoes them);
  under ``torchrun`` each rank appends to its own ``manifest.rankN.jsonl``;
- ``summary.csv`` — one row per recording: status, events, duration, sample rate, seconds taken;
- ``errors.csv`` — every recording that could not be read, with the reason (the run goes on);
- ``events.csv`` / ``events.parquet`` — all events of the run in one canonical table.

Every file is written atomically (temporary file, then rename): an interrupted run (Ctrl-C included)
leaves no half-written table, and the next run resumes where it stopped.

Data parallel over processes, GPUs and nodes: launched by ``torchrun`` (``WORLD_SIZE`` > 1), rank
``r`` of ``W`` annotates recordings ``r, r + W, r + 2W, …`` of the sorted list (a disjoint share),
then all ranks meet at a barrier (gloo) and rank 0 merges every rank's manifest into the run's
summary and combined tables::

    torchrun --nproc-per-node 4 -m biomae annotate recordings/ --out annotations/ --model M
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from biomae import __version__
from biomae._io import atomic_open, atomic_write_text
from biomae.annotations import concat_events, make_events, validate_events, write_annotations

# Containers we look for in folders; AAC/M4A/WMA are listed so that they are reported, not ignored.
AUDIO_SUFFIXES = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .w64 .rf64 .caf .au .snd "
    ".m4a .aac .wma".split()
)
OUTPUT_SUFFIXES = {
    "raven": ".selections.txt",
    "audacity": ".audacity.txt",
    "csv": ".events.csv",
    "parquet": ".events.parquet",
    "aoef": ".aoef.json",
}
STATE_DIR = ".biomae"  # per-recording canonical tables, used to resume and to merge the run's table


class Detector(Protocol):
    """What ``annotate`` needs of a detector (the energy detector, or a trained model)."""

    name: str

    def params(self) -> dict: ...

    def detect_file(self, path: str | Path, recording: str | None = None) -> pd.DataFrame: ...


@dataclass
class AnnotateConfig:
    """Options of an annotation run (the detector's own settings live with the detector)."""

    formats: Sequence[str] = ("raven",)
    overwrite: bool = False
    plots: bool = False
    page_s: float = 30.0
    max_pages: int | None = 20
    progress: bool = True

    def __post_init__(self) -> None:
        self.formats = tuple(self.formats)
        unknown = [f for f in self.formats if f not in OUTPUT_SUFFIXES]
        if unknown:
            raise ValueError(
                f"unknown output format(s) {unknown}; choose from {', '.join(OUTPUT_SUFFIXES)}"
            )
        if self.page_s <= 0:
            raise ValueError(f"page_s must be positive, got {self.page_s}")


@dataclass
class Recording:
    """An input recording and the relative stem its outputs are written under."""

    path: Path
    key: str  # e.g. "site1/20240101_0500" (no suffix), unique within a run
    outputs: dict[str, str] = field(default_factory=dict)


def find_recordings(inputs: Iterable[str | os.PathLike]) -> list[Recording]:
    """Expand files, folders (recursive) and globs into recordings with unique output keys.

    Raises:
        FileNotFoundError: an input matches nothing (names the input).
    """
    found: list[tuple[Path, Path]] = []  # (file, the root its key is relative to)
    for item in inputs:
        item = str(item)
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            found.extend((p, path) for p in files if p.is_file())
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
    seen: dict[str, Path] = {}  # key -> file
    for file, root in found:
        resolved = file.resolve()
        if resolved in seen.values():  # the same file named twice (a folder and a glob, say)
            continue
        key = file.relative_to(root).with_suffix("").as_posix()
        if key in seen:  # the same stem from two inputs: disambiguate by the parent folder
            key = f"{file.parent.name}/{key}"
            n = 2
            while key in seen:
                key, n = f"{file.parent.name}/{file.stem}-{n}", n + 1
        seen[key] = resolved
        recordings.append(Recording(path=file, key=key))
    return recordings


def _read_manifests(out_dir: Path) -> dict[str, dict]:
    """The last entry per key over the run's JSON-lines manifests (every rank's; a torn last line
    from a crash is ignored)."""
    entries: dict[str, dict] = {}
    for path in sorted(out_dir.glob("manifest*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            entries[entry["key"]] = entry
    return entries


def _append_manifest(path: Path, entry: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def annotate(
    inputs: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    detector: Detector,
    config: AnnotateConfig | None = None,
) -> pd.DataFrame:
    """Annotate every recording under ``inputs`` into ``out_dir``; returns the run's summary."""
    from biomae import audio as audio_io
    from biomae import distributed

    config = config or AnnotateConfig()
    out_dir = Path(out_dir)
    state_dir = out_dir / STATE_DIR
    state_dir.mkdir(parents=True, exist_ok=True)
    inputs = list(inputs)
    recordings = find_recordings(inputs)
    info = distributed.init(device="cpu")  # gloo: annotate only needs a barrier between ranks
    main_rank = info.rank == 0
    manifest_path = out_dir / (
        "manifest.jsonl" if info.world_size == 1 else f"manifest.rank{info.rank}.jsonl"
    )
    manifest = {} if config.overwrite else _read_manifests(out_dir)
    distributed.barrier()  # every rank has read the manifests before any is removed
    if config.overwrite and main_rank:
        for old in out_dir.glob("manifest*.jsonl"):
            old.unlink()
    distributed.barrier()
    if main_rank:
        _write_run_json(out_dir, inputs, recordings, detector, config, info.world_size)

    todo, entries = [], {}
    for rec in recordings[info.rank :: info.world_size]:
        entry = manifest.get(rec.key)
        if entry and entry["status"] == "done" and _outputs_exist(out_dir, rec.key, config):
            entries[rec.key] = entry | {"skipped": True}
        else:
            todo.append(rec)

    progress = _progress(todo, audio_io, enabled=config.progress and main_rank)
    if hasattr(detector, "detect_many"):  # a model: windows of many recordings share batches
        detections = (result for _, result in detector.detect_many([r.path for r in todo]))
    else:
        detections = (None for _ in todo)
    for rec, detected in zip(todo, detections, strict=True):
        entry = _annotate_one(rec, out_dir, detector, config, audio_io, detected)
        _append_manifest(manifest_path, entry)
        entries[rec.key] = entry | {"skipped": False}
        progress.update(entry.get("duration_s") or 0.0)
        progress.set_postfix(
            events=entry.get("n_events", 0),
            errors=sum(e["status"] == "error" for e in entries.values()),
        )
    progress.close()
    if info.world_size == 1:
        return _write_run_tables(out_dir, [entries[r.key] for r in recordings])
    distributed.barrier()  # every rank's manifest is complete
    if main_rank:
        merged = _read_manifests(out_dir)
        for key, entry in merged.items():
            entries.setdefault(key, entry | {"skipped": key in manifest})
        summary = _write_run_tables(
            out_dir, [entries[r.key] for r in recordings if r.key in entries]
        )
    else:
        summary = pd.DataFrame([entries[r.key] for r in recordings if r.key in entries])
    distributed.barrier()
    distributed.destroy()
    return summary


def _write_run_json(out_dir, inputs, recordings, detector, config, world_size) -> None:
    atomic_write_text(
        out_dir / "run.json",
        json.dumps(
            {
                "biomae_version": __version__,
                "inputs": [str(i) for i in inputs],
                "n_recordings": len(recordings),
                "world_size": world_size,
                "detector": detector.params(),
                "annotate": asdict(config),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            indent=2,
            default=str,
        ),
    )


def _outputs_exist(out_dir: Path, key: str, config: AnnotateConfig) -> bool:
    paths = [out_dir / (key + OUTPUT_SUFFIXES[f]) for f in config.formats]
    paths.append(out_dir / STATE_DIR / (key + ".parquet"))
    return all(p.exists() for p in paths)


def _annotate_one(
    rec: Recording, out_dir: Path, detector: Detector, config, audio_io, detected=None
) -> dict:
    """Detect (unless ``detected`` holds the events, or the exception, already) and write one
    recording; every failure becomes an ``error`` entry, never an exception (KeyboardInterrupt
    excepted: it stops the run, leaving only whole files behind)."""
    started = time.perf_counter()
    entry = {
        "key": rec.key,
        "path": str(rec.path),
        "status": "error",
        "n_events": 0,
        "duration_s": None,
        "sample_rate": None,
        "channels": None,
        "error": "",
    }
    try:
        info = audio_io.info(rec.path)
        entry.update(
            duration_s=info.duration_s, sample_rate=info.sample_rate, channels=info.channels
        )
        if isinstance(detected, Exception):
            raise detected
        events = detector.detect_file(rec.path, str(rec.path)) if detected is None else detected
        events = make_events(events)
        validate_events(
            events,
            sample_rate=info.sample_rate,
            duration_s=info.duration_s,
            where=f"{detector.name} output for {rec.path}",
        )
        for fmt in config.formats:
            options = {"sample_rate": info.sample_rate} if fmt in ("raven", "aoef") else {}
            if fmt == "aoef":
                options["duration_s"] = info.duration_s
            write_annotations(events, out_dir / (rec.key + OUTPUT_SUFFIXES[fmt]), fmt, **options)
        if config.plots:
            from biomae.viz import plot_recording_pages

            plot_recording_pages(
                rec.path,
                events,
                out_dir / rec.key,
                page_s=config.page_s,
                title=f"{rec.path.name} — {len(events)} events ({detector.name})",
                max_pages=config.max_pages,
            )
        state = out_dir / STATE_DIR / (rec.key + ".parquet")
        write_annotations(events, state, "parquet")
        entry.update(status="done", n_events=len(events))
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a bad file is reported and skipped; the run goes on
        entry["error"] = f"{type(err).__name__}: {err}"
    entry["seconds"] = round(time.perf_counter() - started, 3)
    return entry


class _NoProgress:
    def update(self, n: float) -> None: ...

    def set_postfix(self, **kwargs) -> None: ...

    def close(self) -> None: ...


def _progress(todo: list[Recording], audio_io, enabled: bool):
    """A tqdm bar over seconds of audio (ETA by audio duration, not by file count)."""
    if not enabled or not todo:
        return _NoProgress()
    from tqdm.auto import tqdm

    total_s = 0.0
    for rec in todo:
        try:
            total_s += audio_io.info(rec.path).duration_s
        except Exception:
            pass  # reported when the file's turn comes
    return tqdm(
        total=total_s,
        unit="s audio",
        desc="annotate",
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]{postfix}",
    )


def _write_run_tables(out_dir: Path, entries: list[dict]) -> pd.DataFrame:
    """summary.csv, errors.csv and the run's combined event table, from the per-recording state."""
    columns = [
        "key",
        "path",
        "status",
        "n_events",
        "duration_s",
        "sample_rate",
        "channels",
        "seconds",
        "skipped",
        "error",
    ]
    summary = pd.DataFrame(entries, columns=columns)
    with atomic_open(out_dir / "summary.csv") as handle:
        summary.to_csv(handle, index=False)
    errors = summary.loc[summary["status"] == "error", ["path", "error"]]
    with atomic_open(out_dir / "errors.csv") as handle:
        errors.to_csv(handle, index=False)
    tables = []
    for entry in entries:
        state = out_dir / STATE_DIR / (entry["key"] + ".parquet")
        if entry["status"] == "done" and state.exists():
            tables.append(pd.read_parquet(state))
    events = concat_events(tables)
    write_annotations(events, out_dir / "events.csv", "csv")
    write_annotations(events, out_dir / "events.parquet", "parquet")
    return summary
