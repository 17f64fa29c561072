"""Cheap checks for cut-off recordings (a recorder's battery died mid-file) and their readable part.

:func:`biomae.audio.info` calls :func:`readable_frames` for every WAV and FLAC: a healthy file costs
one header walk (WAV: the ``data`` chunk's declared size against the file size) or one decoded
sample at the end (FLAC: seek to the last sample the header promises and decode it). Only when that
check fails is the file decoded to find how many samples are readable; those samples are what
:func:`biomae.audio.load` and :func:`biomae.audio.stream` then return.
"""

from __future__ import annotations

import struct
from pathlib import Path

_COARSE_FRAMES = 1 << 16  # frames decoded per read while counting a cut FLAC's readable part


def readable_frames(path: Path, file_format: str, header_frames: int) -> tuple[int, int]:
    """(readable frames, frames the header declares) of a WAV or FLAC; equal when the file is whole.

    Args:
        path: the recording.
        file_format: libsndfile's format name (``"WAV"``, ``"WAVEX"``, ``"FLAC"``, ...); other
            formats are returned as whole (their truncation shows as a decoding error).
        header_frames: the frame count libsndfile reports.
    """
    if file_format in ("WAV", "WAVEX"):
        declared = _riff_declared_frames(path)
        if declared is not None and declared > header_frames:
            return header_frames, declared  # libsndfile already stops at the end of the data
        return header_frames, header_frames
    if file_format == "FLAC" and not _decodes_at(path, header_frames - 1, 1):
        return _flac_readable_frames(path, header_frames), header_frames
    return header_frames, header_frames


def _riff_declared_frames(path: Path) -> int | None:
    """Frames a RIFF/WAVE ``data`` chunk declares (its byte size / block align), None if unknown.

    Unknown: not RIFF/WAVE (RF64, RIFX, W64 are trusted to libsndfile), no ``fmt `` before
    ``data``, or a size of 0 / 0xFFFFFFFF (streaming recorders that never patched the header).
    """
    block_align = None
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        position = 12
        for _ in range(256):  # a WAV has a handful of chunks before ``data``
            handle.seek(position)
            chunk = handle.read(22)  # id, size and, for ``fmt ``, up to its block align
            if len(chunk) < 8:
                return None
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:8])[0]
            if chunk_id == b"fmt " and len(chunk) == 22:
                block_align = struct.unpack("<H", chunk[20:22])[0]
            if chunk_id == b"data":
                if not block_align or chunk_size in (0, 0xFFFFFFFF):
                    return None
                return chunk_size // block_align
            position += 8 + chunk_size + (chunk_size & 1)
    return None


def _decodes_at(path: Path, start: int, n_frames: int) -> bool:
    """Whether ``n_frames`` decode in full from frame ``start`` (a fresh decoder, seeking there)."""
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as handle:
            if start:
                handle.seek(start)
            return len(handle.read(n_frames, dtype="int16")) == n_frames
    except Exception:  # libsndfile's errors: lost sync, failed seek, ...
        return False


def _flac_readable_frames(path: Path, header_frames: int) -> int:
    """Frames of a cut FLAC that decode: decoded in coarse reads up to the first failure, then the
    exact end found by bisection within that last read."""
    import soundfile

    good = 0
    try:
        with soundfile.SoundFile(str(path)) as handle:
            while good < header_frames:
                n_frames = min(_COARSE_FRAMES, header_frames - good)
                got = len(handle.read(n_frames, dtype="int16"))
                good += got
                if got < n_frames:
                    return good
    except Exception:
        pass
    low, high = good, min(good + _COARSE_FRAMES, header_frames)  # low decodes, high does not
    while high - low > 1:
        middle = (low + high) // 2
        if _decodes_at(path, good, middle - good):
            low = middle
        else:
            high = middle
    return low
