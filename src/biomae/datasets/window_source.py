"""Decoded-audio access shared by the window samplers of :mod:`biomae.datasets.windows`:
recordings, the rank / worker share of a plan, memory-mapped prepared audio
(:mod:`biomae.datasets.prepared`), the per-worker LRU cache of decoded files (in the transport
dtype) and span reading for files too long to cache."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from torch.utils.data import IterableDataset, get_worker_info

from biomae.datasets.prepared import INT16_SCALE, to_transport


def to_float32(audio: torch.Tensor) -> torch.Tensor:
    """Transport audio as float32: int16 becomes a new tensor ``audio / 32768`` (exact), float32
    is returned as is."""
    if audio.dtype != torch.int16:
        return audio
    if audio.device.type == "cpu":  # one pass (torch's promoting mul is 2x slower on CPU)
        scale = np.float32(1.0 / INT16_SCALE)
        return torch.from_numpy(np.multiply(audio.numpy(), scale, dtype=np.float32))
    return audio.float().mul_(1.0 / INT16_SCALE)


def _as_transport(samples: np.ndarray, dtype: str) -> np.ndarray:
    """Stored samples (int16 or float32, e.g. a memory-mapped slice) in the transport dtype; the
    same array when the dtypes agree."""
    if samples.dtype == np.dtype(dtype):
        return np.asarray(samples)  # a plain ndarray view of a memmap
    if samples.dtype == np.int16:  # -> float32
        return np.multiply(samples, np.float32(1.0 / INT16_SCALE), dtype=np.float32)
    return to_transport(np.asarray(samples, dtype=np.float32), dtype)


def _distributed_rank() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _WindowSource(IterableDataset):
    """Shared machinery: recordings, sharding, cached span decoding."""

    _MAPPED_OPEN = 256  # prepared files kept memory-mapped per process (each holds a descriptor)

    def __init__(
        self,
        recordings: pd.DataFrame,
        config,
        rank: int | None,
        world_size: int | None,
        prepared=None,
    ):
        if rank is None or world_size is None:
            rank, world_size = _distributed_rank()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, world_size={world_size}), got {rank}")
        self.config = config
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        recordings = recordings.reset_index(drop=True)
        self.recording_ids = recordings["recording_id"].astype(str).tolist()
        self.paths = recordings["path"].astype(str).tolist()
        self.file_rates = recordings["sample_rate"].to_numpy(dtype=np.int64)
        self.file_samples = recordings["n_samples"].to_numpy(dtype=np.int64)
        rate = config.sample_rate
        self.n_samples = self.file_samples * rate // self.file_rates  # at the target rate
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self.shared_cache: SharedCache | None = None  # set by WindowLoader: one cache for workers
        self.prepared = prepared  # a PreparedAudio store at this rate, or None
        if prepared is not None and prepared.sample_rate != rate:
            raise ValueError(
                f"prepared audio at {prepared.sample_rate} Hz cannot feed windows at {rate} Hz"
            )
        self.prepared_paths = (
            prepared.lookup(recordings, warn_missing=True)
            if prepared is not None
            else [None] * len(self.paths)
        )
        self._mapped: OrderedDict[int, np.ndarray] = OrderedDict()

    def __getstate__(self) -> dict:  # spawned workers map the prepared files again
        return {**self.__dict__, "_mapped": OrderedDict()}

    @property
    def n_prepared(self) -> int:
        """How many of the recordings are read from prepared audio."""
        return sum(path is not None for path in self.prepared_paths)

    def set_epoch(self, epoch: int) -> None:
        """Use the plan of ``epoch`` (call before iterating, like DistributedSampler)."""
        self.epoch = int(epoch)

    def _shard(self) -> tuple[int, int]:
        worker = get_worker_info()
        n_workers, worker_id = (1, 0) if worker is None else (worker.num_workers, worker.id)
        return self.rank * n_workers + worker_id, self.world_size * n_workers

    def _mapped_audio(self, rec: int) -> np.ndarray | None:
        """The prepared samples of ``rec`` (memory-mapped, the store's dtype), or None."""
        path = self.prepared_paths[rec]
        if path is None:
            return None
        if rec in self._mapped:
            self._mapped.move_to_end(rec)
            return self._mapped[rec]
        audio = self.prepared.open(path)
        self._mapped[rec] = audio
        if len(self._mapped) > self._MAPPED_OPEN:
            self._mapped.popitem(last=False)
        return audio

    def _whole(self, rec: int) -> np.ndarray | None:
        """The whole recording at the target rate from the cache (decoded on first use), or None
        when it is too long (``cache_file_max_s``) or too big (``cache_bytes``) to cache."""
        cfg = self.config
        shared = self.shared_cache
        if shared is not None and (audio := shared.fetch(self, rec)) is not None:
            return audio
        if rec in self._cache:
            self._cache.move_to_end(rec)
            return self._cache[rec]
        too_long = self.file_samples[rec] / self.file_rates[rec] > cfg.cache_file_max_s
        itemsize = np.dtype(cfg.transport_dtype).itemsize
        if too_long or itemsize * (int(self.n_samples[rec]) + 1) > cfg.cache_bytes:
            return None
        audio = self._decode(rec)
        self._cache[rec] = audio
        self._cached_bytes += audio.nbytes
        while self._cached_bytes > cfg.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.nbytes
        return audio

    def _decode(self, rec: int) -> np.ndarray:
        """The whole recording at the target rate, in the transport dtype."""
        from biomae.audio import load

        audio, _ = load(self.paths[rec], sample_rate=self.config.sample_rate)
        return to_transport(audio, self.config.transport_dtype)

    def _decode_into(self, rec: int, out: np.ndarray) -> int:
        """Decode the whole recording into ``out`` (transport dtype), as :meth:`_decode` gives it
        but without its temporaries; returns the samples written (at most ``len(out)``)."""
        from biomae.audio import load

        audio, _ = load(self.paths[rec], sample_rate=self.config.sample_rate)
        n = min(len(audio), len(out))
        to_transport(audio[:n], self.config.transport_dtype, out=out[:n], scratch=True)
        return n

    def _recordings_used(self) -> np.ndarray:
        """Indices of the recordings windows can come from (all, unless a subclass knows)."""
        return np.flatnonzero(self.n_samples > 0)

    def _part(self, rec: int, start: int, n_valid_max: int) -> tuple[np.ndarray, bool]:
        """The real samples of the window at ``start`` (at most ``window_samples`` and
        ``n_valid_max``) in the transport dtype, and whether they are a view of the cache."""
        size = min(self.config.window_samples, n_valid_max)
        mapped = self._mapped_audio(rec)
        if mapped is not None:
            return _as_transport(mapped[start : start + size], self.config.transport_dtype), False
        whole = self._whole(rec)
        if whole is not None:
            return whole[start : start + size], True
        return to_transport(self._read_span(rec, start, size), self.config.transport_dtype), False

    def _fill(self, rec: int, start: int, n_valid_max: int, out: np.ndarray) -> int:
        """Write the window into ``out`` ((window_samples,), transport dtype), zeros after the
        real samples; returns ``n_valid`` (the batch builder of ``WindowLoader``)."""
        part, _ = self._part(rec, start, n_valid_max)
        out[: len(part)] = part
        out[len(part) :] = 0
        return len(part)

    def _audio(self, rec: int, start: int, n_valid_max: int) -> tuple[torch.Tensor, int]:
        """``window_samples`` float32 samples from ``start`` (target rate); zeros after the first
        ``min(n_valid_max, samples left in the file)``. Returns ``(audio, n_valid)``."""
        size = self.config.window_samples
        part, cached = self._part(rec, start, n_valid_max)
        if len(part) == size and part.dtype == np.float32:
            # In a DataLoader worker the item is copied on its way out (collated into shared
            # memory, or pickled): a view of the cache is safe and saves a copy. In-process, a copy,
            # so that in-place edits of an item never reach the cache.
            view = part if get_worker_info() is not None and cached else part.copy()
            return torch.from_numpy(view), size
        out = np.zeros(size, dtype=part.dtype)
        out[: len(part)] = part
        return to_float32(torch.from_numpy(out)), len(part)

    def __iter__(self) -> Iterator[dict]:
        for rec, start, stop in self._entries():
            yield self._item(rec, start, stop)

    def _item(self, rec: int, start: int, stop: int) -> dict:
        """The item of the window at ``start`` (target samples) in recording ``rec``, whose
        readable span ends at ``stop``."""
        audio, n_valid = self._audio(rec, start, stop - start)
        return {
            "audio": audio,
            **self._extras(rec, start, stop),
            "recording_id": self.recording_ids[rec],
            "start_sample": start,
            "sample_rate": self.config.sample_rate,
            "n_valid": n_valid,
        }

    def _entries(self) -> Iterator[tuple[int, int, int]]:
        """This rank's and worker's windows in plan order: ``(recording, start, stop)``, where
        ``stop`` (target samples) ends the region the window may cover."""
        raise NotImplementedError

    def _extras(self, rec: int, start: int, stop: int, columns: bool = False) -> dict:
        """Item fields besides audio and position (the events of labelled windows; as column
        dicts whatever ``events_as`` says when ``columns``: the batch builder of
        ``WindowLoader``, whose main process makes the DataFrames)."""
        return {}

    def _read_span(self, rec: int, start: int, size: int) -> np.ndarray:
        from biomae.audio import load, resample

        rate, file_rate = self.config.sample_rate, int(self.file_rates[rec])
        first = start * file_rate // rate
        count = min(-(-size * file_rate // rate), int(self.file_samples[rec]) - first)
        audio, _ = load(self.paths[rec], start_s=first / file_rate, duration_s=count / file_rate)
        return resample(audio, file_rate, rate)[:size]


class SharedCache:
    """The decoded audio of a dataset's cacheable recordings (``cache_file_max_s``), one copy in
    shared memory for all DataLoader workers instead of one LRU cache per worker. Each file is
    decoded once, by whichever process first needs it (:meth:`fetch`), while batches flow: no
    serial decoding phase before the first batch. A worker also decodes its coming files in a
    background thread (:meth:`decode_ahead`), so that it keeps the CPU busy while it waits for the
    DataLoader to ask for its next batch or for a file another worker is decoding.

    Layout: ``arena`` (sum of ``n_samples + 1``,) in the transport dtype; recording ``recs[i]``
    lives at ``arena[offsets[i] : offsets[i] + lengths[i]]``. ``lengths[i]`` is ``-1`` until a
    process claims the file (under a lock shared by the processes), ``-2`` while it decodes it and
    the number of samples once they are in the arena (published after them). Build it with
    :meth:`for_dataset` (``None`` when the files do not fit in ``cache_bytes``).
    """

    UNCLAIMED, CLAIMED = -1, -2

    def __init__(self, recs: np.ndarray, capacity: np.ndarray, dtype: str):
        self.recs = recs  # (R,) recording indices
        self.capacity = capacity  # (R,) samples reserved per recording
        self.offsets = np.concatenate([[0], np.cumsum(capacity)])  # (R + 1,)
        self.index = {int(rec): i for i, rec in enumerate(recs.tolist())}
        self.arena = shared_empty(int(self.offsets[-1]), getattr(torch, dtype))
        self.lengths = torch.full((len(recs),), self.UNCLAIMED, dtype=torch.int64).share_memory_()
        self._lock = multiprocessing.Lock()  # inherited by (or sent to) the DataLoader workers
        self._views: tuple[np.ndarray, np.ndarray] | None = None

    def __getstate__(self) -> dict:  # spawned workers: NumPy views are rebuilt, not pickled
        return {**self.__dict__, "_views": None}

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """NumPy views of ``arena`` and ``lengths`` (cheaper to index than tensors)."""
        if self._views is None:
            self._views = (self.arena.numpy(), self.lengths.numpy())
        return self._views

    @classmethod
    def for_dataset(cls, dataset) -> SharedCache | None:
        cfg = dataset.config
        recs = dataset._recordings_used()
        recs = recs[[dataset.prepared_paths[rec] is None for rec in recs.tolist()]]
        duration_s = dataset.file_samples[recs] / dataset.file_rates[recs]
        recs = recs[duration_s <= cfg.cache_file_max_s]
        capacity = dataset.n_samples[recs] + 1  # the resampler may give one sample more
        nbytes = int(capacity.sum()) * np.dtype(cfg.transport_dtype).itemsize
        if len(recs) == 0 or nbytes > cfg.cache_bytes:
            return None
        return cls(recs, capacity, cfg.transport_dtype)

    def get(self, rec: int) -> np.ndarray | None:
        """Recording ``rec`` (a view of shared memory), or None: not cached or not decoded yet."""
        i = self.index.get(rec)
        arena, lengths = self._arrays()
        if i is None or (length := int(lengths[i])) < 0:
            return None
        return arena[self.offsets[i] : self.offsets[i] + length]

    def fetch(self, dataset, rec: int, timeout_s: float = 600.0) -> np.ndarray | None:
        """Recording ``rec`` (a view of shared memory), decoded now if no process has claimed it
        yet, else once the process that has is done; None if ``rec`` is not in this cache."""
        i = self.index.get(rec)
        if i is None:
            return None
        _, lengths = self._arrays()
        if lengths[i] < 0 and not self._decode(dataset, i):
            deadline = time.monotonic() + timeout_s
            while lengths[i] < 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SharedCache: recording {rec} not decoded in {timeout_s} s")
                time.sleep(0.0005)
        return self.get(rec)

    def _decode(self, dataset, i: int) -> bool:
        """Claim position ``i`` and decode it into the arena; False if it was claimed already."""
        arena, lengths = self._arrays()
        with self._lock:
            if lengths[i] != self.UNCLAIMED:
                return False
            lengths[i] = self.CLAIMED
        try:
            start = int(self.offsets[i])
            length = dataset._decode_into(int(self.recs[i]), arena[start : self.offsets[i + 1]])
        except BaseException:
            lengths[i] = self.UNCLAIMED  # whoever needs it next decodes it (and sees the error)
            raise
        lengths[i] = length  # published after the samples
        return True

    def decode_ahead(self, dataset, stop: threading.Event) -> None:
        """Decode the unclaimed files of this process's share of the epoch (``dataset._entries``)
        in plan order, until they are all claimed or ``stop`` is set (the body of the thread of
        :meth:`start_ahead`). A file that fails is left to :meth:`fetch`, which raises."""
        _, lengths = self._arrays()
        for n, (rec, _, _) in enumerate(dataset._entries()):
            if stop.is_set() or (n % 64 == 0 and not (lengths == self.UNCLAIMED).any()):
                return
            i = self.index.get(rec)
            if i is not None and lengths[i] == self.UNCLAIMED:
                try:
                    self._decode(dataset, i)
                except Exception:  # noqa: BLE001 - reported by fetch in the batch builder
                    continue

    def start_ahead(self, dataset) -> threading.Event | None:
        """Run :meth:`decode_ahead` in a daemon thread; returns the event that stops it (None
        when every file is claimed already)."""
        if not (self._arrays()[1] == self.UNCLAIMED).any():
            return None
        stop = threading.Event()
        threading.Thread(target=self.decode_ahead, args=(dataset, stop), daemon=True).start()
        return stop


def shared_empty(n: int, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised (n,) tensor in shared memory (pages are allocated when first written)."""
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(n)
    return torch.empty(0, dtype=dtype).new(storage)
