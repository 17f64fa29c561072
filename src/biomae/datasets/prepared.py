"""Prepared audio: catalog recordings decoded once, resampled to a model's rate and stored as raw
PCM that the window samplers memory-map, so that no training epoch (the first one included) pays
for FLAC decoding and resampling again.

A store is a folder ``<catalog>/prepared/<rate>hz-<dtype>/`` holding

- ``<checksum[:2]>/<checksum>.pcm``: one recording, mono (the mean of its channels, as
  :func:`biomae.audio.load` mixes it), at ``rate`` Hz (soxr HQ, the resampler of
  :mod:`biomae.audio`), as raw little-endian ``int16`` (``round(x * 32768)`` clipped, as the
  samplers' int16 transport) or ``float32``; the number of samples is the file size over the item
  size. ``checksum`` is the catalog's (:func:`biomae.datasets.catalog.file_checksum`), so the same
  audio imported twice is prepared once, and a file changed since import is not matched to stale
  samples (its checksum in a re-import differs).
- ``store.json``: the format, written with the first file.

Files are written atomically (a reader never maps a half-written one), so an interrupted
:meth:`PreparedAudio.prepare` resumes where it stopped; a recording that cannot be decoded is
reported (named, with the reason) and skipped, and the samplers decode it themselves.

Read it with NumPy: ``np.memmap(path, dtype="<i2", mode="r") / 32768``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biomae.atomic_io import atomic_path, atomic_write_text

DTYPES = {"int16": "<i2", "float32": "<f4"}
INT16_SCALE = 32768.0  # int16 samples: float value = int16 value / INT16_SCALE
BLOCK_S = 60.0  # decoding block: memory stays a few blocks for a recording of any length


@dataclass
class PrepareSummary:
    """What :meth:`PreparedAudio.prepare` did: files written now, found already there, failed
    (``(path, reason)``), the seconds of audio written and the wall time."""

    n_written: int = 0
    n_present: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    audio_s: float = 0.0
    seconds: float = 0.0

    def __str__(self) -> str:
        speed = f", {self.audio_s / self.seconds:,.0f}x real time" if self.n_written else ""
        return (
            f"prepared {self.n_written} recording(s) ({self.audio_s / 3600:.2f} h) in "
            f"{self.seconds:.1f} s{speed}; {self.n_present} already prepared; "
            f"{len(self.failed)} failed"
        )


class PreparedAudio:
    """The store of recordings prepared at ``sample_rate`` Hz as ``dtype`` under ``root`` (see
    the module docstring). Cheap to construct."""

    def __init__(self, root: str | os.PathLike, sample_rate: int, dtype: str = "int16"):
        if int(sample_rate) != sample_rate or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.sample_rate, self.dtype = int(sample_rate), dtype
        self.folder = Path(root).expanduser() / f"{self.sample_rate}hz-{dtype}"

    def path(self, checksum: str) -> Path:
        """Where the recording with catalog ``checksum`` is (or will be) stored."""
        if not _is_checksum(checksum):
            raise ValueError(f"not a catalog checksum: {checksum!r}")
        return self.folder / checksum[:2] / f"{checksum}.pcm"

    def expected_samples(self, file_rate: int, file_samples: int) -> int:
        """The length at this store's rate of a recording of ``file_samples`` at ``file_rate``
        (the resampler may give one sample more or fewer)."""
        return int(file_samples) * self.sample_rate // int(file_rate)

    def lookup(self, recordings: pd.DataFrame, *, warn_missing: bool = False) -> list[str | None]:
        """Per row of ``recordings`` (catalog columns ``checksum, sample_rate, n_samples``): the
        stored file, or None when it is not prepared (or its length does not match the row).
        ``warn_missing``: warn how many are not prepared (they will be decoded) and name the
        command that prepares them."""
        found = self._lookup(recordings)
        if warn_missing and None in found:
            warnings.warn(
                f"{found.count(None)} of {len(found)} recordings are not prepared in "
                f"{self.folder} and are decoded instead; run `biomae data prepare --sample-rate "
                f"{self.sample_rate}` on their catalog",
                stacklevel=3,
            )
        return found

    def _lookup(self, recordings: pd.DataFrame) -> list[str | None]:
        if "checksum" not in recordings or len(recordings) == 0:
            return [None] * len(recordings)
        found = []
        columns = ("checksum", "sample_rate", "n_samples")
        rows = zip(*(recordings[c] for c in columns), strict=True)
        itemsize = np.dtype(DTYPES[self.dtype]).itemsize
        for checksum, file_rate, file_samples in rows:
            path = self.path(checksum) if _is_checksum(checksum) else None
            try:
                size = path.stat().st_size if path is not None else -1
            except FileNotFoundError:
                size = -1
            expected = self.expected_samples(file_rate, file_samples)
            ok = size >= 0 and size % itemsize == 0 and abs(size // itemsize - expected) <= 2
            found.append(str(path) if ok else None)
        return found

    def open(self, path: str) -> np.ndarray:
        """The samples of a stored file, memory-mapped read-only ((n,) in the store's dtype)."""
        return open_pcm(path, self.dtype)

    def prepare(
        self,
        recordings: pd.DataFrame,
        *,
        base: str | os.PathLike | None = None,
        workers: int = 2,
        progress: Callable[[int, int], None] | None = None,
    ) -> PrepareSummary:
        """Decode, resample and store every recording of ``recordings`` (catalog columns ``path,
        checksum, sample_rate, n_samples, duration_s``) not stored yet, in ``workers``
        processes (0 or 1: in this one). Relative paths are taken relative to ``base``.
        Recordings with the same checksum are prepared once. ``progress(done, total)`` is called
        after each file. Failures are collected in the summary, never raised.

        Raises:
            ValueError: ``recordings`` has no ``checksum`` column.
            OSError: the disk holding the store has less free space than the new files need
                (checked before anything is written).
        """
        begin = time.perf_counter()
        summary = PrepareSummary()
        if "checksum" not in recordings:
            raise ValueError("prepare needs the catalog's checksum column")
        known = recordings["checksum"].map(_is_checksum)
        summary.failed = [
            (str(p), "no checksum in its catalog row") for p in recordings["path"][~known]
        ]
        table = recordings[known].drop_duplicates("checksum")
        present = self.lookup(table)
        summary.n_present = sum(p is not None for p in present)
        todo = table.loc[np.array([p is None for p in present], dtype=bool)].sort_values(
            "duration_s", ascending=False
        )
        jobs = [
            (os.path.join(base or "", str(path)), str(self.path(str(checksum))))
            for path, checksum in zip(todo["path"], todo["checksum"], strict=True)
        ]
        if jobs:
            self._check_space(todo)
            self._write_manifest()
        done = 0

        def finish(source: str, result: float | str) -> None:
            nonlocal done
            done += 1
            if isinstance(result, str):
                summary.failed.append((source, result))
            else:
                summary.n_written += 1
                summary.audio_s += result
            if progress is not None:
                progress(done, len(jobs))

        args = (self.sample_rate, self.dtype)
        if workers <= 1 or len(jobs) <= 1:
            for source, target in jobs:
                finish(source, _prepare_one(source, target, *args))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_prepare_one, s, t, *args): s for s, t in jobs}
                for future in as_completed(futures):
                    try:
                        result = future.result()
                    except Exception as err:  # noqa: BLE001 - e.g. a worker killed (memory)
                        result = f"{type(err).__name__}: {err}"
                    finish(futures[future], result)
        summary.seconds = time.perf_counter() - begin
        return summary

    def _check_space(self, todo: pd.DataFrame) -> None:
        """Raise OSError when the new files would not fit on the store's disk."""
        itemsize = np.dtype(DTYPES[self.dtype]).itemsize
        rates, lengths = todo["sample_rate"].to_numpy(), todo["n_samples"].to_numpy()
        need = int((lengths.astype(np.float64) * self.sample_rate / rates).sum()) * itemsize
        existing = next(p for p in (self.folder, *self.folder.parents) if p.exists())
        free = shutil.disk_usage(existing).free
        if need > free:
            raise OSError(
                f"{self.folder}: preparing {len(todo)} recording(s) needs {_size(need)}, "
                f"only {_size(free)} free"
            )

    def prune(self, recordings: pd.DataFrame) -> list[Path]:
        """Delete the stored files of recordings no longer in ``recordings`` (the catalog's, e.g.
        after a dataset was re-imported or dropped); returns the files deleted."""
        keep = {str(c) for c in recordings.get("checksum", []) if _is_checksum(c)}
        stale = [p for p in self.folder.glob("*/*.pcm") if p.stem not in keep]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def _write_manifest(self) -> None:
        manifest = self.folder / "store.json"
        if manifest.exists():
            return
        description = {
            "format": "raw PCM, little-endian, mono (mean of channels), one file per recording",
            "dtype": self.dtype,
            "sample_rate": self.sample_rate,
            "int16_scale": 32768 if self.dtype == "int16" else None,
            "resampler": "soxr HQ",
            "file": "<checksum[:2]>/<checksum>.pcm, checksum as in the catalog's recordings",
        }
        atomic_write_text(manifest, json.dumps(description, indent=2) + "\n")


def open_pcm(path: str | os.PathLike, dtype: str = "int16") -> np.ndarray:
    """A stored file's samples, memory-mapped read-only ((n,) ``dtype``; empty for an empty
    file, which ``np.memmap`` cannot map)."""
    if os.path.getsize(path) == 0:
        return np.zeros(0, dtype=DTYPES[dtype])
    return np.memmap(path, dtype=DTYPES[dtype], mode="r")


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.1f} MB"


def _is_checksum(value: object) -> bool:
    """A catalog checksum: hexadecimal (SHA-1), at least 3 characters."""
    return isinstance(value, str) and len(value) >= 3 and all(c in _HEX for c in value)


_HEX = frozenset("0123456789abcdef")


def to_transport(
    audio: np.ndarray, dtype: str, *, out: np.ndarray | None = None, scratch: bool = False
) -> np.ndarray:
    """Float32 audio in the transport dtype (int16: ``round(x * 32768)``, clipped): ``audio``
    itself for float32, else a new array, or ``out`` (same length) when given. ``scratch=True``
    lets the int16 conversion overwrite ``audio`` instead of allocating temporaries."""
    if dtype == "float32":
        if out is None:
            return audio
        out[...] = audio
        return out
    work = audio if scratch else np.empty_like(audio)
    np.multiply(audio, np.float32(INT16_SCALE), out=work)
    np.rint(work, out=work)
    np.clip(work, -32768, 32767, out=work)
    if out is None:
        return work.astype(np.int16)
    out[...] = work  # float32 -> int16 (integral values within range: exact)
    return out


def _prepare_one(source: str, target: str, sample_rate: int, dtype: str) -> float | str:
    """Decode ``source`` at ``sample_rate`` into ``target`` (atomically); the seconds of audio
    written, or the reason it failed."""
    from biomae.audio import stream

    n = 0
    try:
        with atomic_path(target) as tmp, open(tmp, "wb") as handle:
            for block in stream(source, block_s=BLOCK_S, sample_rate=sample_rate):
                samples = to_transport(block.audio, dtype, scratch=True)
                handle.write(samples.astype(DTYPES[dtype], copy=False).tobytes())
                n += len(samples)
    except Exception as err:  # noqa: BLE001 - reported per file, the others go on
        return f"{type(err).__name__}: {err}"
    return n / sample_rate
