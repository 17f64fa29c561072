"""Load, stream, resample and save field recordings; window arithmetic in integer samples.

Everything goes through libsndfile (``soundfile``): WAV (8/16/24/32-bit int, float, A-law, µ-law),
FLAC, OGG Vorbis, Opus, MP3, AIFF, CAF, W64, RF64. AAC / M4A / WMA are not readable by libsndfile;
they are rejected with a message that suggests converting with ffmpeg.

Conventions:

* audio is float32 in [-1, 1], mono ``(n_samples,)`` unless stated otherwise; ``channel=None``
  mixes all channels down (mean), ``channel=k`` picks the 0-based channel ``k``;
* positions are integer sample offsets; a time is ``sample / sample_rate`` (never accumulated
  floats);
* resampling is soxr "HQ" everywhere, so :func:`stream` with ``sample_rate=`` yields blocks that
  concatenate to exactly ``load(path, sample_rate=...)`` (soxr's streaming resampler produces the
  same samples as its one-shot call);
* bad input fails early with :class:`AudioError`, whose message names the file and the reason:
  missing, empty, header-only, corrupt data, unsupported container, NaN/Inf samples, channel out
  of range, a span past the end of the recording;
* a WAV or FLAC cut short (the recorder stopped mid-file) is not rejected: :func:`info` gives its
  readable length and a ``warning``, :func:`load` and :func:`stream` return the readable part and
  emit a :class:`TruncatedAudioWarning` naming the file.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biomae.atomic_io import atomic_path
from biomae.audio_truncation import readable_frames

RESAMPLE_QUALITY = "HQ"  # soxr quality preset used by resample(), load() and stream()
_CHUNK_FRAMES = 1 << 16  # frames read per call while streaming (at the source rate)

# Recording suffixes, lowercase, defined here once for every module that looks for audio: what
# libsndfile reads, in the order a search for ``stem.<suffix>`` prefers them ...
AUDIO_SUFFIXES = (
    ".wav", ".flac", ".wave", ".ogg", ".oga", ".opus", ".mp3",
    ".aif", ".aiff", ".aifc", ".w64", ".rf64", ".caf", ".au", ".snd",
)  # fmt: skip
# ... and the containers it cannot decode, named in the error (matched by suffix, or by magic bytes
# when the suffix lies); ``biomae annotate`` finds them in folders too (RECORDING_SUFFIXES), so
# they are reported, never ignored.
UNREADABLE_SUFFIXES = {
    ".aac": "AAC",
    ".m4a": "M4A (AAC in MP4)",
    ".m4b": "M4B (AAC in MP4)",
    ".mp4": "MP4",
    ".3gp": "3GP",
    ".wma": "WMA",
    ".asf": "WMA/ASF",
}
RECORDING_SUFFIXES = (*AUDIO_SUFFIXES, *UNREADABLE_SUFFIXES)  # every suffix that names a recording
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")

# save(): suffixes that are not the name of their libsndfile format (.wav -> WAV, .flac -> FLAC).
_SAVE_FORMAT_ALIASES = {".opus": "OGG", ".oga": "OGG", ".aif": "AIFF"}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_III"}


class AudioError(ValueError):
    """A recording cannot be read (or written) as asked; the message names the file and why."""


class TruncatedAudioWarning(UserWarning):
    """A recording is shorter than its header says; only its readable part is returned."""


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of a recording (``duration_s = n_samples / sample_rate``).

    ``n_samples`` and ``duration_s`` count the samples that can be read: for a truncated WAV or
    FLAC (the recorder stopped mid-file) that is less than the header declares, and ``warning``
    says so (``"truncated: header says 60.0 s, 41.30 s readable"``); None for a whole file.
    """

    path: str
    sample_rate: int
    n_samples: int
    channels: int
    duration_s: float
    format: str
    subtype: str
    warning: str | None = None


@dataclass(frozen=True)
class Block:
    """One streamed block: ``audio`` (n_samples,) float32 from ``start_sample`` (output rate)."""

    start_sample: int
    audio: np.ndarray
    sample_rate: int

    @property
    def start_s(self) -> float:
        """Start time in seconds, computed from the integer offset."""
        return self.start_sample / self.sample_rate

    @property
    def end_sample(self) -> int:
        """One past the last sample of the block (output rate)."""
        return self.start_sample + len(self.audio)


# ----------------------------------------------------------------------------- header and checks


def info(path: str | os.PathLike) -> AudioInfo:
    """Read and validate a recording's header, and check that a WAV or FLAC is whole.

    A truncated WAV (its ``data`` chunk declares more bytes than the file holds) or FLAC (the last
    sample its header promises does not decode) is not rejected: ``n_samples`` / ``duration_s``
    give its readable part, which :func:`load` and :func:`stream` return, and ``warning`` reports
    the cut. The check is cheap (a header walk, or one decoded sample at the end of a FLAC); only a
    cut FLAC is decoded to count its readable samples. Truncation of other compressed formats (MP3,
    OGG, ...) shows when decoding, as an :class:`AudioError` from :func:`load` / :func:`stream`.

    Raises:
        AudioError: missing file, directory, zero-length file, unsupported container (AAC/M4A/WMA),
            unreadable or corrupt header, no readable samples (header-only, or cut before the
            first sample), sample rate <= 0.
    """
    import soundfile

    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    size = p.stat().st_size
    if size == 0:
        raise AudioError(f"{p}: empty file (0 bytes)")
    try:
        header = soundfile.info(str(p))
    except Exception as error:  # libsndfile raises its own error types (and RuntimeError)
        container = _unsupported_container(p)
        if container is not None:
            raise AudioError(
                f"{p}: {container} files cannot be read by libsndfile; convert the file first, "
                f"e.g. `ffmpeg -i '{p.name}' '{p.stem}.flac'`"
            ) from error
        raise AudioError(f"{p}: not a readable audio file ({error})") from error
    if header.samplerate <= 0:
        raise AudioError(f"{p}: invalid sample rate {header.samplerate} Hz in the header")
    rate = int(header.samplerate)
    n_samples, declared = readable_frames(p, str(header.format), int(header.frames))
    warning = None
    if n_samples < declared:
        warning = (
            f"truncated: header says {declared / rate:.1f} s, {n_samples / rate:.2f} s readable"
        )
    if n_samples <= 0:
        why = f"{warning}" if warning else f"header only, {size} bytes"
        raise AudioError(f"{p}: contains no audio samples ({why})")
    return AudioInfo(
        path=str(p),
        sample_rate=rate,
        n_samples=n_samples,
        channels=int(header.channels),
        duration_s=n_samples / rate,
        format=str(header.format),
        subtype=str(header.subtype),
        warning=warning,
    )


def _info_warned(path: str | os.PathLike, meta: AudioInfo | None = None) -> AudioInfo:
    """:func:`info` (or ``meta``, the header already read), emitting a
    :class:`TruncatedAudioWarning` for a file cut short."""
    meta = info(path) if meta is None else meta
    if meta.warning:
        warnings.warn(f"{meta.path}: {meta.warning}", TruncatedAudioWarning, stacklevel=3)
    return meta


def _unsupported_container(path: Path) -> str | None:
    """Name of an AAC/MP4/WMA container, from the suffix or the magic bytes, else None."""
    if path.suffix.lower() in UNREADABLE_SUFFIXES:
        return UNREADABLE_SUFFIXES[path.suffix.lower()]
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[4:8] == b"ftyp":
        return "MP4/M4A"
    if head[:16] == _ASF_GUID:
        return "WMA/ASF"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xF6) == 0xF0:  # ADTS sync, layer bits 00
        return "AAC (ADTS)"
    return None


def _check_rate(path: str, sample_rate: int | None) -> None:
    if sample_rate is not None and (int(sample_rate) != sample_rate or sample_rate <= 0):
        raise AudioError(
            f"{path}: target sample_rate must be a positive integer, got {sample_rate}"
        )


def _check_channel(meta: AudioInfo, channel: int | None) -> None:
    if channel is not None and not 0 <= channel < meta.channels:
        raise AudioError(
            f"{meta.path}: channel {channel} out of range: the file has {meta.channels} channel(s) "
            f"(valid: 0..{meta.channels - 1}, or None to mix down)"
        )


def _check_finite(path: str, audio: np.ndarray, offset: int) -> None:
    finite = np.isfinite(audio)
    if not finite.all():
        first = int(np.argmin(finite.reshape(len(audio), -1).all(axis=1)))
        raise AudioError(
            f"{path}: non-finite sample (NaN or Inf) at sample {offset + first}; "
            "the file is corrupt or was written from a broken computation"
        )


def _integer_pcm(subtype: str) -> bool:
    """Whether a libsndfile subtype stores integer samples (PCM, A-law, µ-law), which cannot
    decode to NaN or Inf (FLAC is always PCM_16 / PCM_24 / PCM_S8)."""
    return subtype.startswith("PCM_") or subtype in ("ALAW", "ULAW")


def _to_mono(frames: np.ndarray, channel: int | None) -> np.ndarray:
    """(n, C) float32 -> (n,) float32: pick ``channel`` or average all channels."""
    if channel is not None:
        return np.ascontiguousarray(frames[:, channel])
    if frames.shape[1] == 1:
        return np.ascontiguousarray(frames[:, 0])
    return frames.mean(axis=1, dtype=np.float32)


def _read_frames(handle, meta: AudioInfo, n_frames: int, offset: int) -> np.ndarray:
    """Read ``n_frames`` (n, C) float32 from the current position; raise on errors, short reads."""
    try:
        frames = handle.read(n_frames, dtype="float32", always_2d=True)
    except Exception as error:
        raise AudioError(
            f"{meta.path}: corrupt or truncated audio data near sample {offset} ({error})"
        ) from error
    if len(frames) < n_frames:
        raise AudioError(
            f"{meta.path}: truncated or corrupt: the header promises {meta.n_samples} samples "
            f"but decoding stopped at sample {offset + len(frames)}"
        )
    return frames


# ----------------------------------------------------------------------------- load and resample


def load(
    path: str | os.PathLike,
    *,
    sample_rate: int | None = None,
    channel: int | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
    info: AudioInfo | None = None,
) -> tuple[np.ndarray, int]:
    """Decode a recording (or a span of it) to float32 mono.

    Args:
        path: audio file.
        sample_rate: output rate in Hz; resampled with soxr when it differs from the file's
            (the span is resampled on its own, so its first and last few ms see zero context).
        channel: 0-based channel to pick; None mixes all channels down (mean).
        start_s: span start in seconds; the first sample is ``round(start_s * file_rate)``. The
            decoder seeks there rather than decoding everything before it.
        duration_s: span length in seconds (``round(duration_s * file_rate)`` samples at the file
            rate); None reads to the end.
        info: the recording's header as :func:`info` read it, when the caller has it already (a
            run reads each recording's header once); None reads it here.

    Returns:
        ``(audio, rate)``: ``audio`` (n_samples,) float32 and its sample rate in Hz. Of a truncated
        WAV or FLAC, the readable part (a :class:`TruncatedAudioWarning` says so).

    Raises:
        AudioError: everything :func:`info` rejects, decoding errors and short reads (corrupt
            data), NaN/Inf samples, channel out of range, a span outside the readable recording.
    """
    meta = _info_warned(path, info)
    _check_channel(meta, channel)
    _check_rate(meta.path, sample_rate)
    start, n_frames = _span(meta, start_s, duration_s)

    import soundfile

    with soundfile.SoundFile(meta.path) as handle:
        if start:
            try:
                handle.seek(start)
            except Exception as error:
                raise AudioError(f"{meta.path}: cannot seek to sample {start} ({error})") from error
        frames = _read_frames(handle, meta, n_frames, start)
    audio = _to_mono(frames, channel)
    del frames
    if not _integer_pcm(meta.subtype):  # integer samples decode to finite floats
        _check_finite(meta.path, audio, start)
    rate = meta.sample_rate
    if sample_rate is not None and sample_rate != rate:
        audio, rate = resample(audio, rate, int(sample_rate)), int(sample_rate)
    return audio, rate


def _span(meta: AudioInfo, start_s: float, duration_s: float | None) -> tuple[int, int]:
    """(first sample, number of samples) at the file rate; raise for a span outside the file."""
    if not math.isfinite(start_s) or start_s < 0:
        raise AudioError(f"{meta.path}: start_s must be finite and >= 0, got {start_s}")
    start = round(start_s * meta.sample_rate)
    if start >= meta.n_samples:
        raise AudioError(
            f"{meta.path}: start_s={start_s} is at or past the end of the recording "
            f"(duration {meta.duration_s:.6f} s)"
        )
    if duration_s is None:
        return start, meta.n_samples - start
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise AudioError(f"{meta.path}: duration_s must be finite and > 0, got {duration_s}")
    n_frames = round(duration_s * meta.sample_rate)
    if n_frames < 1:
        raise AudioError(
            f"{meta.path}: duration_s={duration_s} is shorter than one sample at "
            f"{meta.sample_rate} Hz"
        )
    if start + n_frames > meta.n_samples:
        raise AudioError(
            f"{meta.path}: span {start_s} s + {duration_s} s ends past the end of the recording "
            f"(duration {meta.duration_s:.6f} s)"
        )
    return start, n_frames


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample with soxr (HQ) along the first axis.

    Args:
        audio: (n_samples,) or (n_samples, channels), any float or int dtype (cast to float32).
        orig_rate: rate of ``audio`` in Hz.
        target_rate: output rate in Hz.

    Returns:
        float32 array of ``round(n_samples * target_rate / orig_rate)`` rows, same channels.
    """
    import soxr

    for name, rate in (("orig_rate", orig_rate), ("target_rate", target_rate)):
        if int(rate) != rate or rate <= 0:
            raise ValueError(f"resample: {name} must be a positive integer (Hz), got {rate}")
    if audio.ndim not in (1, 2):
        raise ValueError(f"resample: audio must be (n,) or (n, C), got shape {audio.shape}")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if orig_rate == target_rate:
        return audio
    return soxr.resample(audio, int(orig_rate), int(target_rate), quality=RESAMPLE_QUALITY)


def window_starts(n_samples: int, window_samples: int, hop_samples: int) -> np.ndarray:
    """Start offsets of windows that tile ``n_samples``, the last one flush with the end.

    Starts are ``0, hop, 2 hop, ...`` while a window fits; if the last of them does not reach the
    end, a final window starting at ``n_samples - window_samples`` is added. A recording no longer
    than one window gets one window at 0 (the caller pads it).

    Returns:
        (n_windows,) int64 start offsets in samples.
    """
    if n_samples < 0 or window_samples < 1 or hop_samples < 1:
        raise ValueError(
            f"window_starts: need n_samples >= 0, window_samples >= 1, hop_samples >= 1; got "
            f"{n_samples}, {window_samples}, {hop_samples}"
        )
    last = max(n_samples - window_samples, 0)
    starts = np.arange(0, last + 1, hop_samples, dtype=np.int64)
    if starts[-1] != last:
        starts = np.append(starts, np.int64(last))
    return starts


# ----------------------------------------------------------------------------- streaming


def stream(
    path: str | os.PathLike,
    *,
    block_s: float,
    hop_s: float | None = None,
    sample_rate: int | None = None,
    channel: int | None = None,
    info: AudioInfo | None = None,
) -> Iterator[Block]:
    """Yield fixed-length, possibly overlapping blocks of a recording of any length.

    Block ``k`` starts at output sample ``k * round(hop_s * rate)`` and holds
    ``round(block_s * rate)`` samples; the last block may be shorter (no padding) and the blocks
    stop once one reaches the end. The file is decoded sequentially in chunks of 65,536 frames, so
    memory stays about three blocks (the caller's, the next, the one filling) at any file length
    (bench/bench_stream_memory.py: 5.8 MiB peak for 2 h at 8 kHz in 60-s blocks).

    With ``sample_rate`` set, the source chunks go through one ``soxr.ResampleStream`` (HQ) that
    carries its filter state across chunks: the blocks, trimmed of their overlap, concatenate to
    exactly ``load(path, sample_rate=sample_rate)`` — no per-block edge effects.

    Args:
        path: audio file.
        block_s: block length in seconds (> 0).
        hop_s: distance between block starts in seconds, ``0 < hop_s <= block_s``; None = block_s.
        sample_rate: output rate in Hz; None keeps the file's.
        channel: 0-based channel to pick; None mixes all channels down (mean).
        info: the recording's header as :func:`info` read it, when the caller has it already;
            None reads it here.

    Yields:
        :class:`Block` with ``audio`` (n,) float32 and ``start_sample`` at the output rate.

    Raises:
        AudioError: as :func:`load`, raised when the bad part is reached (header problems at once).
    """
    meta = _info_warned(path, info)
    _check_channel(meta, channel)
    _check_rate(meta.path, sample_rate)
    hop_s = block_s if hop_s is None else hop_s
    if not (math.isfinite(block_s) and block_s > 0):
        raise AudioError(f"{meta.path}: block_s must be finite and > 0, got {block_s}")
    if not (math.isfinite(hop_s) and 0 < hop_s <= block_s):
        raise AudioError(f"{meta.path}: hop_s must be in (0, block_s={block_s}], got {hop_s}")
    rate = meta.sample_rate if sample_rate is None else int(sample_rate)
    block_samples, hop_samples = round(block_s * rate), round(hop_s * rate)
    if hop_samples < 1:
        raise AudioError(f"{meta.path}: hop_s={hop_s} is shorter than one sample at {rate} Hz")
    return _blocks(_decoded_chunks(meta, channel, rate), block_samples, hop_samples, rate)


def _decoded_chunks(meta: AudioInfo, channel: int | None, rate: int) -> Iterator[np.ndarray]:
    """Mono float32 chunks of the whole file at ``rate``, checked for errors, NaN, short reads."""
    import soundfile

    resampler = None
    if rate != meta.sample_rate:
        import soxr

        resampler = soxr.ResampleStream(
            meta.sample_rate, rate, 1, dtype="float32", quality=RESAMPLE_QUALITY
        )
    with soundfile.SoundFile(meta.path) as handle:
        offset = 0
        while offset < meta.n_samples:
            n_frames = min(_CHUNK_FRAMES, meta.n_samples - offset)
            chunk = _to_mono(_read_frames(handle, meta, n_frames, offset), channel)
            _check_finite(meta.path, chunk, offset)
            offset += n_frames
            if resampler is None:
                yield chunk
            else:
                yield resampler.resample_chunk(chunk, last=offset >= meta.n_samples)


def _blocks(
    chunks: Iterator[np.ndarray], block_samples: int, hop_samples: int, rate: int
) -> Iterator[Block]:
    """Cut chunks into blocks of ``block_samples`` every ``hop_samples`` (the last may be short).

    Each block is filled in its own array and handed over (no copy); the next one starts with the
    overlap copied from it, so this generator holds at most two blocks and one chunk.
    """
    buffer = np.empty(block_samples, dtype=np.float32)
    filled = 0  # samples in buffer, which starts at output sample ``start``
    start = last_end = 0  # last_end: end of the last block yielded
    for chunk in chunks:
        position = 0
        while position < len(chunk):
            take = min(block_samples - filled, len(chunk) - position)
            buffer[filled : filled + take] = chunk[position : position + take]
            filled, position = filled + take, position + take
            if filled == block_samples:
                full, buffer = buffer, np.empty(block_samples, dtype=np.float32)
                filled = block_samples - hop_samples
                buffer[:filled] = full[hop_samples:]
                yield Block(start, full, rate)
                start, last_end = start + hop_samples, start + block_samples
    if filled and start + filled > last_end:
        yield Block(start, buffer[:filled].copy(), rate)


# ----------------------------------------------------------------------------- save


def save(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    *,
    subtype: str | None = None,
) -> None:
    """Write ``audio`` atomically; the format follows the suffix (.wav .flac .ogg .opus .mp3 ...).

    Args:
        path: output file; replaced only once it is completely written.
        audio: (n_samples,) or (n_samples, channels) float in [-1, 1] (values beyond are an error
            for integer subtypes rather than silently clipped) or int16/int32 PCM.
        sample_rate: Hz, > 0.
        subtype: libsndfile subtype (``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``, ...); None = the
            format's default.
    """
    import soundfile

    p = Path(path)
    suffix = p.suffix.lower()
    file_format = _SAVE_FORMAT_ALIASES.get(suffix, suffix[1:].upper())
    if file_format not in soundfile.available_formats():
        raise AudioError(
            f"{p}: cannot choose a format for suffix {suffix!r}; use .wav .flac .ogg .opus .mp3 "
            ".aiff .caf .w64 .rf64 or another libsndfile format name"
        )
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise AudioError(f"{p}: sample_rate must be a positive integer, got {sample_rate}")
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or len(audio) == 0:
        raise AudioError(f"{p}: audio must be a non-empty (n,) or (n, C) array, got {audio.shape}")
    subtype = subtype or ("OPUS" if suffix == ".opus" else None)
    if audio.dtype.kind == "f":
        _check_finite(str(p), audio, 0)
        peak = float(np.max(np.abs(audio)))
        written_subtype = subtype or soundfile.default_subtype(file_format)
        if written_subtype not in _FLOAT_SUBTYPES and peak > 1.0:
            raise AudioError(
                f"{p}: peak amplitude {peak:.4g} exceeds 1.0 and subtype {written_subtype} would "
                "clip it; scale the audio or save with subtype='FLOAT'"
            )
    try:
        with atomic_path(p) as tmp:
            soundfile.write(str(tmp), audio, int(sample_rate), subtype=subtype, format=file_format)
    except Exception as error:
        raise AudioError(f"{p}: cannot write {file_format}/{subtype} ({error})") from error
