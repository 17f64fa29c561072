"""The annotation run of :func:`annotate` (the package docstring, :mod:`biomae.annotate`, says what
it guarantees): find the recordings, skip those done, detect, write each one's outputs, then the
run's tables."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biomae import audio as audio_io
from biomae.annotate import files
from biomae.annotate.files import OutputError
from biomae.annotate.recordings import Recording, find_recordings
from biomae.annotations import make_events, output_suffixes, validate_events
from biomae.audio import AudioInfo
from biomae.detectors import Detector, complete

WRITES_AHEAD = 2  # recordings detected but not yet written, at most (bounded memory)


@dataclass
class AnnotateConfig:
    """Options of an annotation run (the detector's own settings live with the detector).

    ``formats``, ``plots``, ``page_s`` and ``max_pages`` shape the results: they are the run's
    settings (with the detector's ``params()``); ``overwrite`` and ``progress`` are not.
    """

    formats: Sequence[str] = ("raven",)
    overwrite: bool = False
    plots: bool = False
    page_s: float = 30.0
    max_pages: int | None = 20
    progress: bool = True

    def __post_init__(self) -> None:
        self.formats = tuple(self.formats)
        writable = output_suffixes()
        unknown = [f for f in self.formats if f not in writable]
        if unknown:
            raise ValueError(
                f"unknown output format(s) {unknown}; choose from {', '.join(writable)}"
            )
        if self.page_s <= 0:
            raise ValueError(f"page_s must be positive, got {self.page_s}")

    def settings(self) -> dict:
        return {
            "formats": list(self.formats),
            "plots": self.plots,
            "page_s": self.page_s,
            "max_pages": self.max_pages,
        }


def detector_name(detector: Detector, path: str | Path, info: AudioInfo | None = None) -> str:
    """The detector that runs on ``path`` (its header ``info``, when read already):
    ``detector.name_for(path)`` where it routes files, else its name."""
    try:
        return str(complete(detector).name_for(path, info))
    except Exception:  # an unreadable file: reported as the recording's error
        return str(detector.name)


class _Interrupts:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt as usual and is also remembered, so that one
    swallowed on its way (in a finalizer, a library's broad ``except``) still stops the run at the
    next recording (:meth:`check`)."""

    def __init__(self) -> None:
        self.hit = False
        self.previous = None

    def __enter__(self) -> _Interrupts:
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self._handle)  # kept where it is ignored
        return self

    def _handle(self, signum, frame) -> None:
        self.hit = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.hit:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def annotate(
    inputs: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    detector: Detector,
    config: AnnotateConfig | None = None,
) -> pd.DataFrame:
    """Annotate every recording under ``inputs`` into ``out_dir``; returns the run's summary.

    Raises:
        FileNotFoundError: an input matches nothing.
        UsageError: no audio, clashing names, ``out_dir`` a file or not writable, or results made
            with other settings in ``out_dir`` (without ``overwrite``).
        OutputError: an output could not be written (disk full, ...); the run stops.
        KeyboardInterrupt: Ctrl-C; every recording finished so far is kept, a rerun resumes.
    """
    with _Interrupts() as interrupts:
        return _annotate(inputs, Path(out_dir), detector, config or AnnotateConfig(), interrupts)


def _annotate(inputs, out_dir: Path, detector, config: AnnotateConfig, interrupts) -> pd.DataFrame:
    distributed = _distributed()

    detector = complete(detector)  # info arguments, name_for, detect_many: checked once
    inputs = [str(i) for i in inputs]
    files.check_out_dir(out_dir)
    recordings = find_recordings(inputs)
    settings = {"detector": detector.params(), "annotate": config.settings()}
    manifest = files.read_manifests(out_dir)
    earlier_inputs = (
        [] if config.overwrite else files.check_settings(out_dir, settings, bool(manifest))
    )
    world = distributed.init(device="cpu")  # gloo: annotate only needs a barrier between ranks
    main_rank = world.rank == 0
    manifest_path = out_dir / (
        "manifest.jsonl" if world.world_size == 1 else f"manifest.rank{world.rank}.jsonl"
    )
    if config.overwrite:
        manifest = {}
    distributed.barrier()  # every rank has read the manifests before any is removed
    if main_rank:
        files.remove_stale_temporaries(out_dir)
        if config.overwrite:
            for old in out_dir.glob("manifest*.jsonl"):
                old.unlink()
        all_inputs = earlier_inputs + [i for i in inputs if i not in earlier_inputs]
        files.write_run_json(out_dir, all_inputs, settings, len(recordings), world.world_size)
    distributed.barrier()

    todo, entries = [], {}
    for rec in recordings[world.rank :: world.world_size]:
        entry = manifest.get(rec.resolved)
        if _is_done(entry, rec, out_dir, config):
            entries[rec.resolved] = entry | {"skipped": True}
        else:
            todo.append(rec)

    headers = read_headers(todo)  # each recording's header, read once for the whole run
    progress = _progress(todo, headers, enabled=config.progress and main_rank)
    readable = [rec for rec in todo if isinstance(headers[rec.resolved], AudioInfo)]
    # a model's windows of many recordings share batches; other detectors go one by one
    detections = detector.detect_many(
        [rec.path for rec in readable], [headers[rec.resolved] for rec in readable]
    )
    tables: dict[str, pd.DataFrame] = {}  # this run's events by key, for the run's tables

    failed = threading.Event()  # an output could not be written: write nothing more

    def write(rec: Recording, header, detected) -> dict | None:  # in the writer thread
        if failed.is_set():
            return None  # never finished: the run stops at the write that failed
        try:
            entry, events = _annotate_one(rec, out_dir, detector, config, header, detected)
            files.append_manifest(manifest_path, entry)  # after its tables are on disk
        except BaseException:
            failed.set()
            raise
        if events is not None:
            tables[rec.key] = events
        return entry

    def finish(rec: Recording, written: Future) -> None:
        entry = written.result()  # an OutputError stops the run here
        entries[rec.resolved] = entry | {"skipped": False}
        progress.update(entry.get("duration_s") or 0.0)
        progress.set_postfix(
            events=entry.get("n_events", 0),
            errors=sum(e["status"] == "error" for e in entries.values()),
        )

    # one writer thread: a recording's tables are written (and fsynced) while the detector
    # works on the next ones; each recording is written whole, in order, then its manifest line
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="biomae-writer")
    pending: deque[tuple[Recording, Future]] = deque()
    try:
        for rec in todo:
            interrupts.check()
            header = headers[rec.resolved]
            detected = next(detections)[1] if isinstance(header, AudioInfo) else header
            pending.append((rec, writer.submit(write, rec, header, detected)))
            while len(pending) > WRITES_AHEAD or (pending and pending[0][1].done()):
                finish(*pending.popleft())
            interrupts.check()
        while pending:
            finish(*pending.popleft())
    finally:
        writer.shutdown(wait=True)  # what was detected is written whole, even after Ctrl-C
        detections.close()  # stops a model's decoding thread / workers
        progress.close()
    interrupts.check()
    if world.world_size == 1:
        return files.write_run_tables(out_dir, [entries[r.resolved] for r in recordings], tables)
    distributed.barrier()  # every rank's manifest is complete
    if main_rank:
        for resolved, entry in files.read_manifests(out_dir).items():
            entries.setdefault(resolved, entry | {"skipped": manifest.get(resolved) == entry})
        rows = [entries[r.resolved] for r in recordings if r.resolved in entries]
        summary = files.write_run_tables(out_dir, rows, tables)
    else:
        rows = [entries[r.resolved] for r in recordings if r.resolved in entries]
        summary = pd.DataFrame(rows, columns=files.SUMMARY_COLUMNS)
    distributed.barrier()
    distributed.destroy()
    return summary


def _is_done(entry: dict | None, rec: Recording, out_dir: Path, config: AnnotateConfig) -> bool:
    """Done before, under the same key, from the same file (size and mtime), every output there."""
    if not entry or entry.get("status") != "done" or entry.get("key") != rec.key:
        return False
    try:
        stat = rec.path.stat()
    except OSError:
        return False
    if (entry.get("size"), entry.get("mtime_ns")) != (stat.st_size, stat.st_mtime_ns):
        return False
    return all(p.exists() for p in files.output_paths(out_dir, rec.key, config.formats))


def fit_to_recording(events: pd.DataFrame, duration_s: float) -> pd.DataFrame:
    """Times rounded to the microsecond and clipped to ``[0, duration_s]`` (never past it)."""
    limit_s = math.floor(duration_s * 1e6) / 1e6
    end_s = np.round(events["end_s"].to_numpy(dtype=np.float64), 6)
    end_s = np.where(np.isnan(end_s) | (end_s >= 0.0), end_s, 0.0)  # as Series.clip: NaN kept
    end_s = np.where(np.isnan(end_s) | (end_s <= limit_s), end_s, limit_s)
    start_s = np.round(events["start_s"].to_numpy(dtype=np.float64), 6)
    start_s = np.where(np.isnan(start_s) | (start_s >= 0.0), start_s, 0.0)
    return events.assign(start_s=np.where(start_s <= end_s, start_s, end_s), end_s=end_s)


def read_headers(recordings: Iterable[Recording]) -> dict[str, AudioInfo | Exception]:
    """Each recording's header (:func:`biomae.audio.info`), or the error that stopped reading
    it, by resolved path: read once per run, then handed to the detector, the pictures and the
    summary."""
    headers: dict[str, AudioInfo | Exception] = {}
    for rec in recordings:
        try:
            headers[rec.resolved] = audio_io.info(rec.path)
        except Exception as err:  # the recording's error, reported when its turn comes
            headers[rec.resolved] = err
    return headers


def _annotate_one(
    rec: Recording,
    out_dir: Path,
    detector: Detector,
    config,
    header: AudioInfo | Exception,
    detected,
) -> tuple[dict, pd.DataFrame | None]:
    """Write one recording of header ``header`` (or the error reading it) whose detection gave
    ``detected`` (its events, or the exception); returns its manifest entry and the events
    written (None for a failed recording: an ``error`` entry with no outputs). An output that
    cannot be written raises :class:`OutputError`; KeyboardInterrupt stops the run, leaving only
    whole files behind."""
    started = time.perf_counter()
    written = None
    stat = rec.path.stat() if rec.path.exists() else None
    entry = {
        "key": rec.key,
        "path": str(rec.path),
        "resolved": rec.resolved,
        "size": stat.st_size if stat else None,
        "mtime_ns": stat.st_mtime_ns if stat else None,
        "status": "error",
        "detector": detector_name(
            detector, rec.path, header if isinstance(header, AudioInfo) else None
        ),
        "n_events": 0,
        "duration_s": None,
        "sample_rate": None,
        "channels": None,
        "warning": None,
        "error": "",
    }
    try:
        if isinstance(header, Exception):
            raise header
        info = header
        entry.update(
            duration_s=info.duration_s,
            sample_rate=info.sample_rate,
            channels=info.channels,
            warning=getattr(info, "warning", None),
        )
        if isinstance(detected, Exception):
            raise detected
        events = detected
        events = make_events(events)
        validate_events(
            events,
            sample_rate=info.sample_rate,
            duration_s=info.duration_s,
            where=f"{entry['detector']} output for {rec.path}",
        )
        events = fit_to_recording(events, info.duration_s)
        if config.plots:
            note = _plot(rec, events, out_dir, config, entry["detector"], info)
            entry["warning"] = "; ".join(w for w in (entry["warning"], note) if w) or None
        files.write_tables(out_dir, rec.key, events, config.formats, info)
        entry.update(status="done", n_events=len(events))
        written = events
    except (KeyboardInterrupt, OutputError):
        raise
    except Exception as err:  # a bad file is reported and skipped; the run goes on
        entry["error"] = f"{type(err).__name__}: {err}"
        with files.writing(out_dir / rec.key):
            files.remove_outputs(out_dir, rec.key)
    entry["seconds"] = round(time.perf_counter() - started, 3)
    return entry, written


def _plot(rec: Recording, events, out_dir: Path, config, name: str, info) -> str | None:
    """Pictures of one recording; returns a note when ``max_pages`` left pages undrawn."""
    # torch: imported when used, so that `import biomae.annotate.run` stays without it
    from biomae.viz import plot_recording_pages

    n_pages = max(1, math.ceil(info.duration_s / config.page_s))
    with files.writing(out_dir / rec.key):  # a picture not saved is an output error
        plot_recording_pages(
            rec.path,
            events,
            out_dir / rec.key,
            page_s=config.page_s,
            title=f"{rec.path.name} — {len(events)} events ({name})",
            max_pages=config.max_pages,
            info=info,
        )
    if config.max_pages is not None and n_pages > config.max_pages:
        drawn_s = config.max_pages * config.page_s
        return (
            f"pictures cover the first {config.max_pages} of {n_pages} pages "
            f"({drawn_s:g} s of {info.duration_s:.0f} s; max_pages)"
        )
    return None


def _distributed():
    """:mod:`biomae.distributed` under ``torchrun`` (``WORLD_SIZE`` > 1); for one process, a
    stand-in with its single-process behaviour, so that annotating on ONNX Runtime imports no
    torch."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from biomae import distributed  # imports torch

        return distributed
    return _OneProcess


class _OneProcess:
    """What :mod:`biomae.distributed` does without ``torchrun``: rank 0 of 1, barriers no-ops."""

    rank, world_size = 0, 1

    @staticmethod
    def init(device: str):
        return _OneProcess

    @staticmethod
    def barrier() -> None: ...

    @staticmethod
    def destroy() -> None: ...


class _NoProgress:
    def update(self, n: float) -> None: ...

    def set_postfix(self, **kwargs) -> None: ...

    def close(self) -> None: ...


def _progress(todo: list[Recording], headers: dict, enabled: bool):
    """A tqdm bar over seconds of audio (ETA by audio duration, not by file count)."""
    if not enabled or not todo:
        return _NoProgress()
    from tqdm.auto import tqdm

    headers = [headers[rec.resolved] for rec in todo]
    return tqdm(
        total=sum(h.duration_s for h in headers if isinstance(h, AudioInfo)),
        unit="s audio",
        desc="annotate",
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]{postfix}",
    )
