"""Embeddings of time spans of a recording (events, example clips, sliding windows).

:func:`embed_spans` is what labelling from examples (:mod:`biomae.examples`) and few-shot detection
(:mod:`biomae.fewshot`) ask of an embedding model. The model is passed in:

- an object with its own ``embed_spans(path, starts_s, ends_s, info=None, context=False)
  -> (N, D)`` method is called as is (a species-aware embedding model drops in this way);
- otherwise an encoder with ``tokens(audio) -> (B, grid_f, grid_t, D)``, ``window_s``,
  ``sample_rate``, ``batch_size`` and ``patch_s()`` — :class:`biomae.embed.Embedder` — is pooled
  here, in one of two ways:

  - ``context=False`` (*isolated*, the default): each span's audio is cut out, centred in a
    window of its own length rounded up to whole time patches (at least :data:`MIN_PATCHES`; spans
    longer than ``window_s`` in pieces of ``window_s``), encoded alone — windows of one length
    batched together — and its tokens averaged. A clip and the same sound inside a recording then
    embed alike (the examples' clips are isolated sounds); on 140 Bengalese-finch syllables of 7
    types (bfsongrepo bl26lb16), leave-one-out 1-NN accuracy 0.87, against 0.65 in context;
  - ``context=True``: the recording streams once in consecutive windows of ``window_s`` (integer
    sample offsets); only windows that overlap a span are encoded, in batches; a span's embedding
    is the mean over the time patches it overlaps (at least one; all frequency patches) — the
    pooling of :meth:`biomae.embed.Embedder.embed_events` without one encoder pass per event.

Audio is read in stretches of at most :data:`READ_SPAN_S` seconds; memory holds one batch of
windows and the ``(N, D)`` results.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from biomae import audio as audio_io
from biomae.audio import AudioInfo


def embed_spans(
    embedder,
    path: str | Path,
    starts_s,
    ends_s,
    info: AudioInfo | None = None,
    context: bool = False,
) -> np.ndarray:
    """``(N, D)`` float32 embeddings of the spans ``[starts_s[i], ends_s[i]]`` of one recording
    (seconds from its first sample), isolated or in context (see the module docstring).

    Raises:
        ValueError: a span ends before it starts, or lies past the end of the recording.
    """
    starts = np.asarray(starts_s, np.float64).reshape(-1)
    ends = np.asarray(ends_s, np.float64).reshape(-1)
    if len(starts) != len(ends):
        raise ValueError(f"{len(starts)} starts and {len(ends)} ends: one of each per span")
    bad = np.flatnonzero(~(ends >= starts) | ~np.isfinite(starts) | (starts < 0))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"{path}: span {i} [{starts[i]}, {ends[i]}] s is not a time span")
    own = getattr(embedder, "embed_spans", None)
    if own is not None:
        return np.asarray(own(path, starts, ends, info=info, context=context), np.float32)
    if context:
        return _pool_tokens(embedder, path, starts, ends, info)
    return _isolated(embedder, path, starts, ends, info)


def _pool_tokens(embedder, path, starts: np.ndarray, ends: np.ndarray, info) -> np.ndarray:
    rate = int(embedder.sample_rate)
    window = round(embedder.window_s * rate)
    patch_s = float(embedder.patch_s())
    sums: np.ndarray | None = None
    counts = np.zeros(len(starts), np.int64)
    if not len(starts):
        return np.zeros((0, int(getattr(embedder, "dim", 0))), np.float32)
    reach = np.maximum(ends, starts + 1e-9)  # a zero-length span still covers its patch
    batch: list[np.ndarray] = []
    spans: list[tuple[float, int]] = []  # (window start s, valid samples)

    def flush() -> None:
        nonlocal sums
        grids = embedder.tokens(np.stack(batch))  # (B, grid_f, grid_t, D)
        sequences = np.asarray(grids, np.float64).mean(axis=1)  # (B, grid_t, D)
        if sums is None:
            sums = np.zeros((len(starts), sequences.shape[-1]), np.float64)
        for sequence, (lo_s, n_valid) in zip(sequences, spans, strict=True):
            n_patches = max(1, min(sequence.shape[0], math.ceil(n_valid / rate / patch_s - 1e-9)))
            hi_s = lo_s + n_valid / rate
            inside = np.flatnonzero((starts < hi_s) & (reach > lo_s))
            cumulative = np.vstack([np.zeros((1, sequence.shape[1])), sequence[:n_patches]])
            cumulative = np.cumsum(cumulative, axis=0)  # (n_patches + 1, D)
            first = np.floor((starts[inside] - lo_s) / patch_s).astype(np.int64)
            first = np.clip(first, 0, n_patches - 1)
            last = np.ceil((ends[inside] - lo_s) / patch_s - 1e-9).astype(np.int64)
            last = np.clip(last, first + 1, n_patches)
            sums[inside] += cumulative[last] - cumulative[first]
            counts[inside] += last - first
        batch.clear()
        spans.clear()

    for block in audio_io.stream(path, block_s=window / rate, sample_rate=rate, info=info):
        lo_s = block.start_sample / rate
        hi_s = lo_s + len(block.audio) / rate
        if not np.any((starts < hi_s) & (reach > lo_s)):
            continue  # no span here: this window is not encoded
        padded = np.zeros(window, np.float32)
        padded[: min(window, len(block.audio))] = block.audio[:window]
        batch.append(padded)
        spans.append((lo_s, min(window, len(block.audio))))
        if len(batch) == int(embedder.batch_size):
            flush()
    if batch:
        flush()
    missing = np.flatnonzero(counts == 0)
    if len(missing) or sums is None:
        i = int(missing[0]) if len(missing) else 0
        raise ValueError(
            f"{path}: span [{starts[i]:g}, {ends[i]:g}] s lies past the end of the recording"
        )
    return (sums / counts[:, None]).astype(np.float32)


MIN_PATCHES = 2  # shortest isolated window, in encoder time patches
READ_SPAN_S = 60.0  # longest stretch of audio read at once for isolated spans


def _isolated(embedder, path, starts: np.ndarray, ends: np.ndarray, info) -> np.ndarray:
    """Each span cut out, centred in its own window and encoded alone (module docstring)."""
    rate = int(embedder.sample_rate)
    patch = round(float(embedder.patch_s()) * rate)  # samples per time patch
    window = max(patch, round(embedder.window_s * rate) // patch * patch)
    info = audio_io.info(path) if info is None else info
    if len(starts) and ends.max() > info.duration_s + 1e-3:
        i = int(np.argmax(ends))
        raise ValueError(
            f"{path}: span [{starts[i]:g}, {ends[i]:g}] s lies past the end of the recording "
            f"({info.duration_s:g} s)"
        )
    pieces: dict[int, list] = {}  # window samples -> [(span, padded audio, samples of audio)]
    for indices, clips in _read_spans(path, starts, ends, info, rate):
        for i, clip in zip(indices, clips, strict=True):
            for begin in range(0, max(1, len(clip)), window):
                part = clip[begin : begin + window]
                size = min(window, max(MIN_PATCHES * patch, -(-len(part) // patch) * patch))
                padded = np.zeros(size, np.float32)
                offset = (size - len(part)) // 2
                padded[offset : offset + len(part)] = part
                pieces.setdefault(size, []).append((i, padded, max(1, len(part))))
    sums: np.ndarray | None = None
    weights = np.zeros(len(starts), np.float64)
    for size in sorted(pieces):
        group = pieces[size]
        for b in range(0, len(group), int(embedder.batch_size)):
            chunk = group[b : b + int(embedder.batch_size)]
            grids = embedder.tokens(np.stack([padded for _, padded, _ in chunk]))
            vectors = np.asarray(grids, np.float64).mean(axis=(1, 2))  # (B, D)
            if sums is None:
                sums = np.zeros((len(starts), vectors.shape[1]), np.float64)
            for (i, _, n), vector in zip(chunk, vectors, strict=True):
                sums[i] += n * vector
                weights[i] += n
    if sums is None:  # no span
        return np.zeros((0, int(getattr(embedder, "dim", 0))), np.float32)
    return (sums / weights[:, None]).astype(np.float32)


def _read_spans(path, starts, ends, info, rate: int):
    """``(indices, clips)``: the spans' audio at ``rate``, read in stretches of at most
    :data:`READ_SPAN_S` seconds (spans by start; a longer span is read alone)."""
    order = np.argsort(starts, kind="stable")
    i = 0
    while i < len(order):
        group_lo, group_hi, j = starts[order[i]], ends[order[i]], i + 1
        while j < len(order) and max(group_hi, ends[order[j]]) - group_lo <= READ_SPAN_S:
            group_hi = max(group_hi, ends[order[j]])
            j += 1
        audio, _ = audio_io.load(
            path, start_s=group_lo, duration_s=group_hi - group_lo, sample_rate=rate, info=info
        )
        clips = []
        for k in order[i:j]:
            first = round((starts[k] - group_lo) * rate)
            last = max(first + 1, round((ends[k] - group_lo) * rate))
            clips.append(audio[first:last])
        yield order[i:j], clips
        i = j


def normalise(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity is then a dot product); zero rows stay 0."""
    embeddings = np.asarray(embeddings, np.float32)
    norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)
