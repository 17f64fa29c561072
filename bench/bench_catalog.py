"""Benchmark: importing all of ../shared/data into a catalog, and the window sampler's throughput.

Prints
1. the wall time of ``Catalog.import_dataset("shared", ...)`` (target < 30 s) with the numbers of
   recordings and events imported, then of ``Catalog.prepare_audio`` (every recording decoded and
   resampled once to the target rate, stored as int16 for memory-mapping, ``--workers``
   processes);
2. 10-s windows per second from prepared audio (``prepared=``): the first epoch reads it from the
   memory-mapped store, nothing is decoded. Before each such run the store's pages are dropped
   from the OS page cache (``posix_fadvise(DONTNEED)``), so epoch 0 reads from the disk;
3. 10-s windows per second delivered with ``--workers`` DataLoader workers (default 2, target
   >= 2,000/s) from a :class:`WindowDataset` (positive_fraction 0.5) over the fully annotated
   recordings, per epoch: epoch 0 decodes each file once (by the first worker that needs it) into
   the shared-memory cache while batches flow, later epochs read from the cache. The fast path,
   :class:`WindowLoader` (batches built in the workers in reusable shared-memory slots, float32
   batches in the main process), with int16 and float32
   transport and events as column dicts, then int16 with events as DataFrames; then, for
   comparison, the per-item path ``DataLoader(dataset, batch_size, collate_fn=collate_windows)``
   (whose persistent workers do not see ``set_epoch``: they repeat epoch 0's windows). The CPU
   time per window (workers + main, from /proc) is printed too: on a machine shared with other
   jobs the wall rate depends on them, the CPU cost does much less;
4. the pretraining stream (``biomae.train.data.RandomWindows``, what ``biomae pretrain`` reads
   from ``data.catalog``), in this process: windows per second decoding each window's span from
   its file, and with ``data.prepared = true`` (memory-mapped prepared audio);
5. the same for the :class:`UnlabeledStream` over every recording (pretraining), fast path
   (int16) and per-item path.

    python bench/bench_catalog.py [--sample-rate 16000] [--windows 4000] [--workers 2]
        [--epochs 3] [--no-item-path]
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
from biomae.datasets.windows import (
    UnlabeledStream,
    WindowConfig,
    WindowDataset,
    WindowLoader,
    collate_windows,
)

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


def item_loader(dataset, workers: int, batch_size: int = 32):
    """The per-item path: ``DataLoader`` + ``collate_windows``, persistent workers."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_windows,
        persistent_workers=workers > 0,
    )  # fmt: skip


def throughput(dataset, workers: int, epochs: int, fast: bool, batch_size: int = 32) -> str:
    """Per epoch through one loader with persistent workers (``fast``: :class:`WindowLoader`,
    else :func:`item_loader`): windows per second (wall), and CPU milliseconds per window in the
    workers and in the main process. On a busy machine the wall rate understates;
    ``cores / CPU per window`` is the rate the same work gives on free cores (``cores`` = workers +
    main process, at most the machine's CPUs)."""
    if fast:
        loader = WindowLoader(dataset, batch_size, num_workers=workers)
        dataloader, set_epoch = loader._loader, loader.set_epoch
    else:
        loader = dataloader = item_loader(dataset, workers, batch_size)
        set_epoch = dataset.set_epoch
    parts = []
    for epoch in range(epochs):
        set_epoch(epoch)
        worker_cpu = _worker_cpu_s(dataloader)
        main_cpu, start, n = time.process_time(), time.perf_counter(), 0
        for batch in loader:
            n += batch["audio"].shape[0]  # (B, T)
        wall = time.perf_counter() - start
        main_ms = (time.process_time() - main_cpu) / n * 1e3
        worker_ms = (_worker_cpu_s(dataloader) - worker_cpu) / n * 1e3
        cores = min(os.cpu_count() or 1, workers + 1)
        free = cores * 1e3 / (worker_ms + main_ms)
        parts.append(
            f"epoch {epoch}: {n / wall:,.0f}/s wall, CPU {worker_ms:.2f} ms/window in workers + "
            f"{main_ms:.2f} in main (= {free:,.0f}/s if {cores} cores were free)"
        )
    return "\n  " + "\n  ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--sample-rate", type=int, default=16000, help="target rate (Hz)")
    parser.add_argument("--windows", type=int, default=4000, help="windows per epoch")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per measurement")
    parser.add_argument(
        "--no-item-path", dest="item_path", action="store_false",
        help="skip the per-item DataLoader path (comparison)",
    )  # fmt: skip
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
        recordings, events = catalog.recordings(), catalog.events()
        prepared = catalog.prepare_audio(args.sample_rate, workers=args.workers)
        print(f"prepare at {args.sample_rate} Hz, {args.workers} processes: {prepared}")
        store = catalog.prepared_audio(args.sample_rate)
        for transport in ("int16", "float32"):
            config = WindowConfig(
                window_s=10.0, sample_rate=args.sample_rate, positive_fraction=0.5,
                windows_per_epoch=args.windows, events_as="columns", transport_dtype=transport,
            )  # fmt: skip
            dataset = WindowDataset(recordings, events, config, prepared=store)
            evict(store.folder)
            result = throughput(dataset, args.workers, args.epochs, fast=True)
            print(
                f"WindowDataset 10-s windows at {args.sample_rate} Hz from prepared audio "
                f"({dataset.n_prepared} of {len(dataset.paths)} recordings), WindowLoader, "
                f"{transport} transport, events as columns, {args.workers} workers: {result} "
                "(target >= 2,000/s)"
            )
        config = WindowConfig(window_s=10.0, sample_rate=args.sample_rate, transport_dtype="int16")
        stream = UnlabeledStream(recordings, config, n_windows=args.windows, prepared=store)
        evict(store.folder)
        result = throughput(stream, args.workers, args.epochs, fast=True)
        print(
            f"UnlabeledStream 10-s windows at {args.sample_rate} Hz over {len(recordings)} "
            f"recordings from prepared audio, WindowLoader, int16 transport, {args.workers} "
            f"workers: {result}"
        )
        pretraining_stream(catalog.root, args.sample_rate)
    runs = [  # decoding from the audio files (no prepared store)
        ("fast", "int16", "columns"),
        ("fast", "float32", "columns"),
        ("fast", "int16", "frame"),
    ]
    if args.item_path:
        runs.append(("item", "float32", "columns"))
    for path, transport, events_as in runs:
        config = WindowConfig(
            window_s=10.0, sample_rate=args.sample_rate, positive_fraction=0.5,
            windows_per_epoch=args.windows, events_as=events_as, transport_dtype=transport,
        )  # fmt: skip
        dataset = WindowDataset(recordings, events, config)
        result = throughput(dataset, args.workers, args.epochs, fast=path == "fast")
        name = "WindowLoader" if path == "fast" else "per-item DataLoader"
        print(
            f"WindowDataset 10-s windows at {args.sample_rate} Hz, {name}, {transport} transport, "
            f"events as {events_as}, {args.workers} workers: {result} (target >= 2,000/s)"
        )
    for path in ("fast", "item") if args.item_path else ("fast",):
        transport = "int16" if path == "fast" else "float32"
        config = WindowConfig(
            window_s=10.0, sample_rate=args.sample_rate, transport_dtype=transport
        )
        stream = UnlabeledStream(recordings, config, n_windows=args.windows)
        result = throughput(stream, args.workers, args.epochs, fast=path == "fast")
        name = "WindowLoader" if path == "fast" else "per-item DataLoader"
        print(
            f"UnlabeledStream 10-s windows at {args.sample_rate} Hz over {len(recordings)} "
            f"recordings, {name}, {transport} transport, {args.workers} workers: {result}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
