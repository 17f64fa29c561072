"""Pretraining data: random fixed-length windows of audio files, resampled to the model's rate.

The stream is a pure function of ``(seed, global micro-batch index)``: micro-batch ``g`` draws its
recordings (with probability proportional to duration), its window starts (uniform integer sample
offsets) and its FFT size from ``numpy.random.default_rng([seed, g])``. Process ``rank`` of
``world_size`` reads micro-batches ``g = k * world_size + rank`` for ``k = start, start + 1, …``, so

* a resumed run continues exactly where it stopped (its position is ``(seed, k)``);
* two processes with one micro-batch each see the same windows as one process accumulating two
  micro-batches (what the DDP / FSDP equivalence test relies on);
* DataLoader workers split ``k`` round-robin and the loader returns them in order, so the number of
  workers does not change the stream.

Windows are mixed down to mono (mean over channels) and resampled with soxr. A recording shorter
than the window is zero-padded at the end (documented here; such windows are drawn rarely because
recordings are weighted by duration). Recordings are split into train / held-out by a hash of their
path relative to the files' common folder (:func:`split_recordings`), never by window.
"""

from __future__ import annotations

import glob
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from biomae.annotations.schema import make_events
from biomae.audio import info, load
from biomae.augment import AddNoise, NoiseConfig, mix
from biomae.datasets.catalog import Catalog

EVAL_STREAM = 2**40  # micro-batch index space used for held-out / statistics windows


@dataclass(frozen=True)
class Recording:
    """One audio file: ``path``, native ``sample_rate`` in Hz and ``n_frames`` (samples/channel);
    ``prepared``: its samples already decoded at the model's rate, as int16 PCM
    (:mod:`biomae.datasets.prepared`), which :func:`read_window` memory-maps instead of decoding."""

    path: str
    sample_rate: int
    n_frames: int
    prepared: str | None = None

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.sample_rate


def find_recordings(patterns: list[str]) -> list[Recording]:
    """All audio files matching the glob ``patterns`` (``**`` recursive), sorted, with their info.

    Raises:
        FileNotFoundError: a pattern matches nothing.
        biomae.audio.AudioError: a file is unreadable, empty or unsupported (named).
    """

    paths: set[str] = set()
    for pattern in patterns:
        found = glob.glob(os.path.expanduser(pattern), recursive=True)
        if not found:
            raise FileNotFoundError(f"data.audio_globs: pattern {pattern!r} matches no file")
        paths.update(os.path.abspath(p) for p in found if os.path.isfile(p))
    recordings = []
    for path in sorted(paths):
        meta = info(path)  # raises AudioError naming the file (unreadable, empty, unsupported)
        recordings.append(Recording(path, meta.sample_rate, meta.n_samples))
    return recordings


def catalog_recordings(
    root: str | os.PathLike, prepared_rate: int | None = None
) -> list[Recording]:
    """The recordings of a ``biomae.datasets.catalog`` folder, without flagged duplicates.

    Rows with ``duplicate_of`` set (the same audio imported twice) are left out so that a file
    cannot land on both sides of the train / held-out split. Relative paths are taken relative to
    the catalog folder. With ``prepared_rate``, recordings prepared at that rate as int16
    (``biomae data prepare --sample-rate RATE``) carry their stored file (``prepared``).

    Raises:
        FileNotFoundError: the catalog holds no ``recordings.parquet``.
        ValueError: it lists no recording.
    """

    catalog = Catalog(root)
    if not catalog.recordings_path.exists():
        raise FileNotFoundError(f"data.catalog: {catalog.recordings_path} not found")
    table = catalog.recordings()
    if "duplicate_of" in table:
        table = table[table["duplicate_of"].fillna("") == ""]
    if len(table) == 0:
        raise ValueError(f"data.catalog: {catalog.recordings_path} lists no recording")
    stored = prepared_files(catalog, table, prepared_rate)
    recordings = [
        Recording(os.path.join(catalog.root, path), int(rate), int(n), prepared)
        for path, rate, n, prepared in zip(
            table["path"], table["sample_rate"], table["n_samples"], stored, strict=True
        )
    ]
    return sorted(recordings, key=lambda r: r.path)


def prepared_files(catalog, table, prepared_rate: int | None) -> list[str | None]:
    """Per row of the catalog's ``table``: its file in the catalog's int16 store at
    ``prepared_rate`` (None: not prepared, or no rate given); warns how many are missing."""
    if prepared_rate is None:
        return [None] * len(table)
    return catalog.prepared_audio(prepared_rate, "int16").lookup(table, warn_missing=True)


def split_recordings(
    recordings: list[Recording], eval_fraction: float
) -> tuple[list[Recording], list[Recording]]:
    """Split by recording: a file is held out when the hash of its relative path falls below
    ``eval_fraction`` (stable across machines and runs). At least one file lands on each side.

    Raises:
        ValueError: fewer than two recordings.
    """
    if len(recordings) < 2:
        raise ValueError(
            f"need >= 2 recordings for a train / held-out split, got {len(recordings)}"
        )
    root = os.path.commonpath([r.path for r in recordings])

    def unit(rec: Recording) -> float:
        rel = Path(os.path.relpath(rec.path, root)).as_posix()
        digest = hashlib.sha1(rel.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    ranked = sorted(recordings, key=unit)
    n_eval = min(max(1, sum(unit(r) < eval_fraction for r in ranked)), len(ranked) - 1)
    held_out = sorted(ranked[:n_eval], key=lambda r: r.path)
    train = sorted(ranked[n_eval:], key=lambda r: r.path)
    return train, held_out


def read_window(
    rec: Recording, start: int, n_samples: int, sample_rate: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Mono window of ``n_samples`` at ``sample_rate`` Hz starting at native sample ``start``,
    written into ``out`` ``(n_samples,)`` float32 when given.

    Reads ``ceil(n_samples * native / sample_rate)`` native samples (fewer at the end of the
    file) with ``biomae.audio.load`` (mono mixdown, soxr resampling) and zero-pads to
    ``n_samples``. A prepared recording (``rec.prepared``, int16 at ``sample_rate``) is
    memory-mapped instead, from sample ``start * sample_rate // native``: the same audio
    resampled as a whole (no edge effects at the window's ends), 16-bit quantised.
    """
    if rec.prepared is not None:
        from biomae.datasets.prepared import INT16_SCALE, open_pcm

        first = start * sample_rate // rec.sample_rate
        part = open_pcm(rec.prepared)[first : first + n_samples]  # (n,) int16
        out = np.empty(n_samples, dtype=np.float32) if out is None else out
        np.multiply(part, np.float32(1 / INT16_SCALE), out=out[: len(part)])
        out[len(part) :] = 0.0
        return out

    n_native = min(-(-n_samples * rec.sample_rate // sample_rate), rec.n_frames - start)
    mono, _ = load(
        rec.path,
        sample_rate=sample_rate,
        start_s=start / rec.sample_rate,
        duration_s=n_native / rec.sample_rate,
    )  # (n,) mono at sample_rate
    out = np.empty(n_samples, dtype=np.float32) if out is None else out
    n = min(n_samples, mono.size)
    out[:n] = mono[:n]
    out[n:] = 0.0
    return out


class RandomWindows(IterableDataset):
    """Endless micro-batches of random windows; see the module docstring for the index scheme.

    Each item is ``{"audio": (B, n_samples) float32, "n_fft": int, "index": int}``. Use it with
    ``DataLoader(dataset, batch_size=None, num_workers=…)``.

    Args:
        recordings: the (train) recordings to draw from.
        n_samples: window length in samples at ``sample_rate``.
        sample_rate: the model's rate in Hz.
        batch_size: windows per micro-batch.
        seed: stream seed.
        rank, world_size: this process's share of micro-batches.
        start: micro-batches this process has already consumed (resume position ``k``).
        n_fft_choices: FFT sizes drawn per micro-batch (empty -> ``n_fft`` is 0: use the default).
        augment: optional ``(audio (B, n), rng) -> audio`` applied to each micro-batch.
    """

    def __init__(
        self,
        recordings: list[Recording],
        n_samples: int,
        sample_rate: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
        n_fft_choices: list[int] | None = None,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    ):
        if not recordings:
            raise ValueError("RandomWindows: no recordings to draw from")
        if not 0 <= rank < world_size:
            raise ValueError(f"RandomWindows: rank {rank} not in [0, world_size={world_size})")
        self.recordings = list(recordings)
        self.n_samples = n_samples
        self.sample_rate = sample_rate
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start
        self.n_fft_choices = list(n_fft_choices or [])
        self.augment = augment
        durations = np.array([r.duration_s for r in self.recordings], dtype=np.float64)
        self.weights = durations / durations.sum()

    def batch(self, index: int, out: np.ndarray | None = None) -> dict:
        """Micro-batch number ``index`` of the global stream (deterministic); its audio is written
        into ``out`` ``(B, n_samples)`` float32 when given (a :class:`BatchLoader` slot)."""
        rng = np.random.default_rng([self.seed, index])
        picks = rng.choice(len(self.recordings), size=self.batch_size, p=self.weights)
        audio = np.empty((self.batch_size, self.n_samples), np.float32) if out is None else out
        for row, pick in enumerate(picks):
            rec = self.recordings[pick]
            n_native = -(-self.n_samples * rec.sample_rate // self.sample_rate)
            start = int(rng.integers(0, max(1, rec.n_frames - n_native + 1)))
            read_window(rec, start, self.n_samples, self.sample_rate, out=audio[row])
        n_fft = int(rng.choice(self.n_fft_choices)) if self.n_fft_choices else 0
        if self.augment is not None:
            audio[:] = self.augment(audio, rng)
        return {"audio": torch.from_numpy(audio), "n_fft": n_fft, "index": index}

    def indices(self) -> Iterator[int]:
        """The global micro-batch indices this process (and DataLoader worker) reads, in order."""
        worker = get_worker_info()
        worker_id, n_workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        k = self.start + worker_id
        while True:
            yield k * self.world_size + self.rank
            k += n_workers

    def __iter__(self) -> Iterator[dict]:
        return (self.batch(index) for index in self.indices())


class BatchLoader:
    """The micro-batches of a :class:`RandomWindows` stream, in order, built by ``num_workers``
    DataLoader workers into reusable shared-memory slots (0: in this process).

    A plain ``DataLoader`` moves each batch through a fresh shared-memory segment (allocated,
    zero-filled page by page, mapped, freed): ~0.9 ms of CPU per 10-s window at 16 kHz, three
    times the cost of cutting the window from prepared audio. Here each worker owns
    ``prefetch_factor + 1`` slots ``(B, n_samples)`` float32, allocated once; it writes a batch into
    a free slot and sends the slot's number; the main process copies the slot out (into pinned
    memory with ``pin_memory``) and frees it. Batches equal the stream's (tested).
    """

    def __init__(
        self, stream: RandomWindows, num_workers: int = 0, prefetch_factor: int = 2,
        pin_memory: bool = False,
    ):  # fmt: skip
        self.stream, self.num_workers, self.pin_memory = stream, num_workers, pin_memory
        if num_workers == 0:
            return
        shape = (num_workers, prefetch_factor + 1, stream.batch_size, stream.n_samples)
        storage = torch.empty(0)._typed_storage()._new_shared(int(np.prod(shape)))
        self.slots = torch.empty(0).new(storage).view(shape)  # (W, K, B, n), pages on first write
        self.free = torch.ones(shape[:2], dtype=torch.int32).share_memory_()  # (W, K) 1 = free
        self.loader = torch.utils.data.DataLoader(
            _SlotStream(stream, self.slots, self.free),
            batch_size=None,
            num_workers=num_workers,
            collate_fn=_identity,
            prefetch_factor=prefetch_factor,
            persistent_workers=True,
        )

    def __iter__(self) -> Iterator[dict]:
        if self.num_workers == 0:
            for batch in self.stream:
                yield {**batch, "audio": batch["audio"].pin_memory()} if self.pin_memory else batch
            return
        for message in self.loader:
            w, k = message.pop("slot")
            slot = self.slots[w, k]  # (B, n) shared
            audio = slot.pin_memory() if self.pin_memory else slot.clone()
            self.free[w, k] = 1  # copied out: the worker may refill it
            yield {"audio": audio, **message}


def _identity(message: dict) -> dict:
    return message


class _SlotStream(IterableDataset):
    """Worker side of :class:`BatchLoader`: fills its slots in turn, yields slot numbers."""

    WAIT_S = 600.0  # a worker gives up waiting for a slot after this long (a stuck consumer)

    def __init__(self, stream: RandomWindows, slots: torch.Tensor, free: torch.Tensor):
        self.stream, self.slots, self.free = stream, slots, free

    def __iter__(self) -> Iterator[dict]:
        worker = get_worker_info()
        w = 0 if worker is None else worker.id
        n_slots = self.slots.shape[1]
        for i, index in enumerate(self.stream.indices()):
            k = i % n_slots
            deadline = time.monotonic() + self.WAIT_S
            while not self.free[w, k]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"BatchLoader worker {w}: slot {k} not released in time")
                time.sleep(0.0005)
            self.free[w, k] = 0
            batch = self.stream.batch(index, out=self.slots[w, k].numpy())
            yield {"slot": (w, k), "n_fft": batch["n_fft"], "index": batch["index"]}


def fixed_windows(
    recordings: list[Recording], n_windows: int, n_samples: int, sample_rate: int, seed: int
) -> torch.Tensor:
    """``(n_windows, n_samples)`` deterministic windows (held-out eval set, statistics)."""
    stream = RandomWindows(recordings, n_samples, sample_rate, n_windows, seed)
    return stream.batch(EVAL_STREAM)["audio"]


def make_augment(mix_prob: float, noise_prob: float, sample_rate: int, mix_snr_db=(0.0, 20.0)):
    """Audio augmentation of a micro-batch ``(B, n)``, or ``None`` when both probabilities are 0.

    * mix: with probability ``mix_prob`` another window of the same micro-batch is added at an SNR
      uniform in ``mix_snr_db`` (``biomae.augment.mix``; no extra reading);
    * noise: with probability ``noise_prob`` white / pink / brown noise at 0-30 dB SNR
      (``biomae.augment.AddNoise``).
    """
    if mix_prob == 0.0 and noise_prob == 0.0:
        return None
    return _BatchAugment(mix_prob, noise_prob, sample_rate, tuple(mix_snr_db))


class _BatchAugment:
    """Picklable batch augmentation (DataLoader workers); see :func:`make_augment`."""

    def __init__(self, mix_prob: float, noise_prob: float, sample_rate: int, mix_snr_db):
        self.mix_prob = mix_prob
        self.noise_prob = noise_prob
        self.sample_rate = sample_rate
        self.mix_snr_db = mix_snr_db

    def __call__(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        empty = make_events([])
        noise = AddNoise(NoiseConfig())
        out = audio.copy()  # (B, n)
        for row in range(audio.shape[0]):
            if audio.shape[0] > 1 and rng.random() < self.mix_prob:
                other = int(rng.integers(0, audio.shape[0] - 1))
                other += other >= row  # any window but this one
                snr_db = float(rng.uniform(*self.mix_snr_db))
                out[row], _, _ = mix(
                    out[row],
                    empty,
                    audio[other],
                    empty,
                    snr_db=snr_db,
                    offset_samples=0,
                    sample_rate=self.sample_rate,
                )
            if rng.random() < self.noise_prob:
                out[row], _ = noise(out[row], empty, rng)
        return out
