"""Benchmark: importing all of ../shared/data into a catalog, and the training windows' throughput.

Prints
1. the wall time of ``Catalog.import_dataset("shared", ...)`` (target < 30 s) with the numbers of
   recordings and events imported, then of ``Catalog.prepare_audio`` (every recording decoded and
   resampled once to the target rate, stored as int16 for memory-mapping, ``--workers``
   processes);
2. the pretraining stream (``biomae.train.data.RandomWindows``, what ``biomae pretrain`` reads
   from ``data.catalog``), 10-s windows, batch 32: in this process (``data.num_workers = 0``),
   decoding each window's span from its file and from prepared audio (``data.prepared = true``);
   then from prepared audio through :class:`~biomae.train.data.BatchLoader` with ``--workers``
   workers (``data.num_workers``), per run of ``--windows`` windows. Before each prepared-audio
   measurement the store's pages are dropped from the OS page cache (``posix_fadvise(DONTNEED)``),
   so the first run reads from the disk. The CPU time per window (workers + main, from /proc) is
   printed too: on a machine shared with other jobs the wall rate depends on them, the CPU cost
   does much less;
3. the fine-tuning windows (``biomae.train.finetune_data.LabeledWindows``, what ``biomae finetune
   --catalog`` reads; 70% placed around events), 10-s windows, batch 32, in this process, decoded
   and from prepared audio.

    python bench/bench_catalog.py [--sample-rate 16000] [--windows 4000] [--workers 2]
        [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from biomae.datasets.catalog import Catalog

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _worker_cpu_s(loader) -> float:
    """CPU seconds used so far by the loader's (persistent) worker processes, from /proc."""
    iterator = getattr(loader, "_iterator", None)
    total = 0.0
    for worker in getattr(iterator, "_workers", []):
        fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return total


def evict(folder: Path) -> int:
    """Drop the (written-back) pages of every file under ``folder`` from the page cache, so that
    the next read comes from the disk; returns the bytes advised."""
    total = 0
    for path in folder.rglob("*.pcm"):
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        total += path.stat().st_size
    return total


def pretraining_stream(root: Path, sample_rate: int, batches: int = 20) -> None:
    """Print the in-process rate of ``RandomWindows`` (10-s windows, batch 16) over the catalog's
    recordings, decoded span by span and read from prepared audio."""
    from biomae.train.data import RandomWindows, catalog_recordings

    for prepared in (False, True):
        recordings = catalog_recordings(root, sample_rate if prepared else None)
        stream = RandomWindows(recordings, 10 * sample_rate, sample_rate, batch_size=16, seed=0)
        stream.batch(0)  # imports, first file handles
        start = time.perf_counter()
        for index in range(1, batches + 1):
            stream.batch(index)
        rate = batches * 16 / (time.perf_counter() - start)
        how = "prepared audio (data.prepared = true)" if prepared else "decoding each window"
        print(
            f"pretraining stream (RandomWindows), 10-s windows, one process, {how}: {rate:,.0f}/s"
        )


def in_process(batch, n_batches: int) -> str:
    """Windows per second (wall) and CPU ms per window of ``batch(index)`` in this process."""
    batch(0)  # imports, first file handles
    cpu, start, n = time.process_time(), time.perf_counter(), 0
    for index in range(1, n_batches + 1):
        n += batch(index)["audio"].shape[0]  # (B, T)
    wall = time.perf_counter() - start
    return f"{n / wall:,.0f}/s wall, CPU {(time.process_time() - cpu) / n * 1e3:.2f} ms/window"


def loader_runs(stream, workers: int, runs: int, n_windows: int) -> str:
    """Per run of ``n_windows`` through one :class:`BatchLoader` with persistent workers:
    windows per second (wall), and CPU milliseconds per window in the workers and in the main
    process. ``cores / CPU per window`` is the rate the same work gives on free cores."""
    from biomae.train.data import BatchLoader

    loader = BatchLoader(stream, workers)
    batches = iter(loader)
    parts = []
    for run in range(runs):
        worker_cpu = _worker_cpu_s(loader.loader)
        main_cpu, start, n = time.process_time(), time.perf_counter(), 0
        while n < n_windows:
            n += next(batches)["audio"].shape[0]  # (B, T)
        wall = time.perf_counter() - start
        main_ms = (time.process_time() - main_cpu) / n * 1e3
        worker_ms = (_worker_cpu_s(loader.loader) - worker_cpu) / n * 1e3
        cores = min(os.cpu_count() or 1, workers + 1)
        free = cores * 1e3 / (worker_ms + main_ms)
        parts.append(
            f"run {run}: {n / wall:,.0f}/s wall, CPU {worker_ms:.2f} ms/window in workers + "
            f"{main_ms:.2f} in main (= {free:,.0f}/s if {cores} cores were free)"
        )
    return "\n  " + "\n  ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--sample-rate", type=int, default=16000, help="target rate (Hz)")
    parser.add_argument("--windows", type=int, default=4000, help="windows per measurement")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--epochs", type=int, default=3, help="runs per loader measurement")
    args = parser.parse_args()
    if not (args.shared / "index" / "files.csv").exists():
        print(f"bench_catalog: {args.shared} not found", file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # as in DataLoader workers; 2 intra-op threads thrash on 2 cores
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Path(tmp) / "catalog")
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = catalog.import_dataset("shared", args.shared)
        seconds = time.perf_counter() - start
        print(
            f"import shared: {seconds:.1f} s for {summary.n_recordings} recordings "
            f"({summary.hours:.2f} h) and {summary.n_events} events (target < 30 s)"
        )
        prepared = catalog.prepare_audio(args.sample_rate, workers=args.workers)
        print(f"prepare at {args.sample_rate} Hz, {args.workers} processes: {prepared}")
        store = catalog.prepared_audio(args.sample_rate)
        training_windows(catalog, store, args)
    return 0


def training_windows(catalog: Catalog, store, args) -> None:
    """Print the pretraining stream's and the fine-tuning windows' rates (module docstring)."""
    from biomae.train.data import RandomWindows, catalog_recordings
    from biomae.train.finetune_data import LabeledWindows, catalog_labeled

    rate, n_samples, n_batches = args.sample_rate, 10 * args.sample_rate, args.windows // 32
    for prepared in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the few files prepare_audio could not store
            recordings = catalog_recordings(catalog.root, rate if prepared else None)
        stream = RandomWindows(recordings, n_samples, rate, batch_size=32, seed=0)
        evict(store.folder)
        how = "prepared audio (data.prepared = true)" if prepared else "decoding each window"
        batches = n_batches if prepared else max(1, n_batches // 20)
        print(
            f"pretraining stream (RandomWindows), 10-s windows at {rate} Hz over "
            f"{len(recordings)} recordings, in this process, {how}: "
            f"{in_process(stream.batch, batches)}"
        )
    evict(store.folder)
    print(
        f"pretraining stream from prepared audio, BatchLoader, {args.workers} workers: "
        f"{loader_runs(stream, args.workers, args.epochs, args.windows)}"
    )
    for prepared in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            items, _ = catalog_labeled(str(catalog.root), [], rate if prepared else None)
        windows = LabeledWindows(items, n_samples, rate, 32, seed=0, positive_fraction=0.7)
        evict(store.folder)
        how = "prepared audio (data.prepared = true)" if prepared else "decoding each window"
        batches = n_batches if prepared else max(1, n_batches // 20)
        print(
            f"fine-tuning windows (LabeledWindows), 10-s windows at {rate} Hz over {len(items)} "
            f"fully annotated recordings, in this process, {how}: "
            f"{in_process(windows.batch, batches)}"
        )


if __name__ == "__main__":
    sys.exit(main())
