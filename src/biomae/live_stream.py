"""Audio arriving on a pipe: a WAV stream or raw PCM, read as it comes, as float32 mono chunks.

What ``biomae annotate - --live`` reads from stdin (``arecord -f S16_LE -r 32000 -c 1 -t wav``,
``sox -d -t wav -``, or a file piped through ``cat``). A WAV stream's header says the rate, the
channels and the sample format (16-, 24- or 32-bit integer PCM, 32-bit float; the data size a
recorder writes before it knows it — 0 or 0xFFFFFFFF — is ignored: the stream runs to EOF). Raw
PCM has no header: its rate, channels and sample format are given (``s16le``, ``s32le``,
``f32le``).

:class:`AudioTail` holds the most recent samples of such a stream (live mode's bounded memory).

Samples decode exactly as :mod:`biomae.audio` decodes a file (libsndfile's scaling: integer PCM
divided by 2^(bits-1), channels averaged in float32), so a recording piped through gives the same
samples as the file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

SAMPLE_FORMATS = {"s16le": ("<i2", 2**15), "s32le": ("<i4", 2**31), "f32le": ("<f4", None)}
CHUNK_BYTES = 1 << 16  # read at most this much at a time (a read returns what the pipe holds)


class StreamError(ValueError):
    """The stream cannot be read as audio; the message names what is wrong and the fix."""


@dataclass(frozen=True)
class StreamFormat:
    """How the stream's bytes are samples."""

    sample_rate: int
    channels: int
    dtype: str  # numpy dtype of one sample ("<i2", "<i4", "<f4", or "s24" for packed 24-bit)
    scale: float | None  # integer full scale (divide by it), None for float samples

    @property
    def frame_bytes(self) -> int:
        return self.channels * (3 if self.dtype == "s24" else np.dtype(self.dtype).itemsize)


def raw_format(sample_rate: int, channels: int, sample_format: str) -> StreamFormat:
    """The format of raw PCM, checked (one line naming the bad value and the choices)."""
    if sample_format not in SAMPLE_FORMATS:
        raise StreamError(
            f"--sample-format {sample_format!r}: give one of {', '.join(SAMPLE_FORMATS)}"
        )
    if not sample_rate > 0 or not channels >= 1:
        raise StreamError(f"raw PCM needs --sample-rate > 0 and --channels >= 1, got "
                          f"{sample_rate} and {channels}")  # fmt: skip
    dtype, scale = SAMPLE_FORMATS[sample_format]
    return StreamFormat(int(sample_rate), int(channels), dtype, scale)


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            break
        data += more
    return data


def read_wav_header(stream: BinaryIO) -> StreamFormat:
    """Read a WAV header up to its ``data`` chunk; the stream is then at the first sample."""
    head = _read_exactly(stream, 12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        raise StreamError(
            "stdin is not a WAV stream (no RIFF/WAVE header); for raw PCM give --sample-rate, "
            "--channels and --sample-format"
        )
    fmt = None
    while True:
        chunk = _read_exactly(stream, 8)
        if len(chunk) < 8:
            raise StreamError("stdin: the WAV stream ended before its data chunk")
        name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if name == b"data":
            break
        body = _read_exactly(stream, size + (size & 1))  # chunks are padded to even sizes
        if name == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the subformat's tag
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, channels, rate, bits)
    if fmt is None:
        raise StreamError("stdin: the WAV stream has no fmt chunk before its data")
    tag, channels, rate, bits = fmt
    kinds = {(1, 16): ("<i2", 2**15), (1, 24): ("s24", 2**23), (1, 32): ("<i4", 2**31)}
    kinds[(3, 32)] = ("<f4", None)
    if (tag, bits) not in kinds or channels < 1 or rate < 1:
        raise StreamError(
            f"stdin: WAV format tag {tag} with {bits}-bit samples is not supported; send 16-, "
            "24- or 32-bit integer PCM or 32-bit float (sox ... -b 16 -e signed-integer)"
        )
    dtype, scale = kinds[(tag, bits)]
    return StreamFormat(rate, channels, dtype, scale)


def to_mono(data: bytes, fmt: StreamFormat) -> np.ndarray:
    """Whole frames of ``data`` → ``(n,)`` float32 mono, as :func:`biomae.audio.load` decodes."""
    if fmt.dtype == "s24":
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (raw[:, 0] << 8 | raw[:, 1] << 16 | raw[:, 2] << 24) >> 8  # sign-extended
        samples = ints.astype(np.float32) / np.float32(fmt.scale)
    else:
        samples = np.frombuffer(data, dtype=fmt.dtype)
        if fmt.scale is not None:
            samples = samples.astype(np.float32) / np.float32(fmt.scale)
        else:
            samples = samples.astype(np.float32)
    frames = samples.reshape(-1, fmt.channels)  # (n, C)
    if fmt.channels == 1:
        return np.ascontiguousarray(frames[:, 0])
    return frames.mean(axis=1, dtype=np.float32)


def chunks(stream: BinaryIO, fmt: StreamFormat) -> Iterator[np.ndarray]:
    """Float32 mono chunks as they arrive (a read returns what the pipe holds, up to
    ``CHUNK_BYTES``); a partial last frame is an error, NaN/Inf float samples too."""
    read = getattr(stream, "read1", stream.read)  # what the pipe holds, without waiting for more
    rest = b""
    offset = 0
    while True:
        data = read(CHUNK_BYTES)
        if not data:
            break
        data = rest + data
        whole = len(data) - len(data) % fmt.frame_bytes
        data, rest = data[:whole], data[whole:]
        if not data:
            continue
        audio = to_mono(data, fmt)
        if fmt.scale is None and not np.isfinite(audio).all():
            raise StreamError(f"stdin: NaN or Inf samples near sample {offset}")
        offset += len(audio)
        yield audio
    if rest:
        raise StreamError(
            f"stdin ended inside a frame ({len(rest)} of {fmt.frame_bytes} bytes): check "
            "--channels and --sample-format"
        )


class AudioTail:
    """The most recent samples of a stream, addressed by global sample index (amortised O(1)
    appends; :meth:`drop_before` releases the past)."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self.buf = np.zeros(1 << 16, dtype=np.float32)
        self.lo = self.hi = 0  # the held samples are buf[lo:hi]
        self.start = 0  # global index of buf[lo]

    @property
    def end(self) -> int:
        """Samples appended so far (the global index one past the last)."""
        return self.start + self.hi - self.lo

    def append(self, audio: np.ndarray) -> None:
        if self.hi + len(audio) > len(self.buf):
            held = self.buf[self.lo : self.hi]
            grown = np.empty(max(len(self.buf), 2 * (len(held) + len(audio))), dtype=np.float32)
            grown[: len(held)] = held
            self.buf, self.lo, self.hi = grown, 0, len(held)
        self.buf[self.hi : self.hi + len(audio)] = audio
        self.hi += len(audio)

    def drop_before(self, sample: int) -> None:
        k = min(max(0, sample - self.start), self.hi - self.lo)
        self.lo, self.start = self.lo + k, self.start + k

    def get(self, first: int, n_samples: int) -> np.ndarray:
        """Samples ``[first, first + n_samples)`` (a view), all of which must still be held."""
        if first < self.start or first + n_samples > self.end:
            raise RuntimeError(
                f"live audio [{first}, {first + n_samples}) is not held ([{self.start}, "
                f"{self.end}))"
            )
        i = self.lo + first - self.start
        return self.buf[i : i + n_samples]

    def load(self, _path, *, start_s: float, duration_s: float) -> tuple[np.ndarray, int]:
        """:func:`biomae.audio.load` of a span, from the held samples (same rounding)."""
        first = round(start_s * self.sample_rate)
        n_samples = min(round(duration_s * self.sample_rate), self.end - first)
        return self.get(first, n_samples).copy(), self.sample_rate
