"""Embedding probes: how well embeddings of labelled clips separate their labels.

Clip sets (each a table ``path, label, start_s, end_s``; labels with fewer than 2 clips are
dropped, and a set needs 2 labels left):

- a folder ``DIR/<label>/*.wav|flac|...`` (:func:`folder_set`): each file's first
  ``max_clip_s`` seconds;
- ``shared``: the clip-labelled sources of the shared data folder (``index/clips.csv``, grouped
  by ``source``; :func:`clip_sets`);
- ``heldout``: the six sets of :mod:`biomae.evaluate.embedding_split`, whose species the shipped
  embedding model never saw in training.

Embeddings of a clip (all from the same audio span):

- ``logmel``: :func:`logmel_stats_embedding` at 16 kHz (mean and standard deviation over time of
  each log-mel band) — the baseline any learned embedding should beat;
- a biomae model file (``embedding`` — the shipped embedding model; ``detector`` — the starter
  detector's encoder; or a path): the mean of its window embeddings
  (:class:`biomae.embed.Embedder`: mean of the encoder's tokens over the patches the clip
  covers) over the clip's windows;
- ``birdnet``: BirdNET V2.4's 1024-d embeddings, mean over its 3-s segments, computed in BirdNET's
  own environment (:mod:`biomae.evaluate.birdnet_embeddings`) when it is set up.

Protocol, per set and embedding: leave-one-out 1-NN accuracy (cosine,
:func:`biomae.metrics.probes.nearest_neighbour_accuracy`) and the stratified k-fold linear probe
(:func:`biomae.metrics.probes.linear_probe_accuracy`, ``k = min(5, smallest class size)``),
beside the majority-class rate (``chance``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from biomae import audio as audio_io
from biomae.evaluate.benchmarks import DEFAULT_DATA_ROOT, Skipped
from biomae.metrics.probes import ProbeConfig, linear_probe_accuracy, nearest_neighbour_accuracy

MAX_CLIP_S = 10.0  # a clip's first seconds are embedded
LOGMEL_SAMPLE_RATE = 16000
BASE_SAMPLE_RATE = 32000  # clips for log-mel and BirdNET are read at this rate, then resampled


# ----------------------------------------------------------------------------------------------
# Clip sets


def clip_sets(data_root: Path, min_per_label: int = 2, min_labels: int = 2):
    """``(sets, notes)``: per scored source of the shared data's ``index/clips.csv`` a table
    ``path, label, start_s, end_s``; notes on sources left out."""
    clips = pd.read_csv(data_root / "index" / "clips.csv", dtype=str, keep_default_na=False)
    sets, notes = {}, []
    for source, rows in clips.groupby("source", sort=True):
        table = spans([str(data_root / f) for f in rows["file"]], rows["label"].tolist())
        kept, note = usable(table, str(source), min_per_label, min_labels)
        notes += note
        if kept is not None:
            sets[str(source)] = kept
    return sets, notes


def folder_set(folder: str | Path) -> pd.DataFrame:
    """``DIR/<label>/<audio files>`` as a table ``path, label, start_s, end_s`` (files anywhere
    under a label folder; files directly in ``DIR`` have no label and raise).

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: an audio file has no label folder, or no audio file is found.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--embeddings {folder}: no such folder (want DIR/<label>/*.wav)")
    paths, labels = [], []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in audio_io.AUDIO_SUFFIXES:
            relative = path.relative_to(folder)
            if len(relative.parts) < 2:
                raise ValueError(
                    f"{path}: audio directly in {folder} has no label; put it in {folder}/<label>/"
                )
            paths.append(str(path))
            labels.append(relative.parts[0])
    if not paths:
        raise ValueError(f"--embeddings {folder}: no audio files under {folder}/<label>/")
    return spans(paths, labels)


def spans(paths: list[str], labels: list[str]) -> pd.DataFrame:
    """Whole clips (their first :data:`MAX_CLIP_S` seconds) as a clip table."""
    return pd.DataFrame({"path": paths, "label": labels, "start_s": 0.0, "end_s": MAX_CLIP_S})


def usable(table: pd.DataFrame, name: str, min_per_label: int = 2, min_labels: int = 2):
    """``(table or None, notes)``: ``table`` without labels of fewer than ``min_per_label``
    clips, None when fewer than ``min_labels`` labels remain (the notes say why)."""
    counts = table["label"].value_counts()
    kept = table[table["label"].isin(counts[counts >= min_per_label].index)]
    n_labels = kept["label"].nunique()
    if n_labels < min_labels:
        return None, [
            f"{name}: left out ({len(table)} clips, {table['label'].nunique()} labels; "
            f"{n_labels} label(s) with >= {min_per_label} clips)"
        ]
    notes = []
    if len(kept) < len(table):
        dropped = sorted(counts[counts < min_per_label].index)
        notes.append(f"{name}: {len(table) - len(kept)} clip(s) of labels {dropped} left out")
    return kept.reset_index(drop=True), notes


def heldout_sets(data_root: Path, sources_root: Path):
    """``(sets, notes)``: the held-out sets of :mod:`biomae.evaluate.embedding_split` (a set whose
    source is missing is left out with a note)."""
    from biomae.evaluate.embedding_split import HELDOUT_SETS, heldout_set

    sets, notes = {}, []
    for name in HELDOUT_SETS:
        try:
            sets[name] = heldout_set(name, data_root, sources_root)
        except FileNotFoundError as err:
            notes.append(f"{name}: left out ({err})")
    return sets, notes


def load_clips(table: pd.DataFrame, sample_rate: int) -> list[np.ndarray]:
    """Each clip's span ``[start_s, min(end_s, duration))`` as mono float32 at ``sample_rate``.

    Raises:
        biomae.audio.AudioError: a clip cannot be decoded (see :func:`readable`).
    """
    clips = []
    for row in table.itertuples():
        meta = audio_io.info(row.path)
        duration_s = min(row.end_s, meta.duration_s) - row.start_s
        if duration_s <= 0:
            raise ValueError(f"{row.path}: span starts at {row.start_s} s, past its end")
        audio, _ = audio_io.load(
            row.path, sample_rate=sample_rate, start_s=row.start_s, duration_s=duration_s, info=meta
        )
        clips.append(np.ascontiguousarray(audio, np.float32))
    return clips


def readable(table: pd.DataFrame, name: str):
    """``(table, clips, notes)``: ``table`` without the clips that cannot be decoded (each named
    in a note; None when :func:`usable` then rejects it) and the others' audio at
    :data:`BASE_SAMPLE_RATE`."""
    keep, clips, notes = [], [], []
    for i in range(len(table)):
        try:
            clips += load_clips(table.iloc[i : i + 1], BASE_SAMPLE_RATE)
            keep.append(i)
        except ValueError as err:  # AudioError is a ValueError
            notes.append(f"{name}: left out {table['path'].iloc[i]} ({err})")
    if len(keep) == len(table):
        return table, clips, notes
    table = table.iloc[keep].reset_index(drop=True)
    kept, more = usable(table, name)
    if kept is None:
        return None, [], notes + more
    used = table["label"].isin(set(kept["label"])).to_numpy()  # usable drops whole labels
    clips = [clip for clip, use in zip(clips, used, strict=True) if use]
    return kept, clips, notes + more


# ----------------------------------------------------------------------------------------------
# Embeddings


def logmel_stats_embedding(
    waveform, sample_rate: int, *, n_mels: int = 128, n_fft: int = 512, hop_s: float = 0.01
):
    """Baseline embedding: mean and std over time of each log-mel band (natural log of power).

    Args:
        waveform: (B, T) float tensor of audio samples.
        sample_rate: samples per second of ``waveform``.
        n_mels, n_fft, hop_s: the :class:`biomae.features.SpectrogramConfig` front end.

    Returns:
        (B, 2 * n_mels) tensor: the band means, then the band standard deviations.
    """
    import torch

    # torch: imported when used, so that `import biomae.evaluate.embedding_suite` stays without it
    from biomae.features import Spectrogram, SpectrogramConfig

    if waveform.ndim != 2:
        raise ValueError(f"waveform must be (B, T); got shape {tuple(waveform.shape)}")
    config = SpectrogramConfig(
        sample_rate=sample_rate, n_fft=n_fft, hop_s=hop_s, n_mels=n_mels, compression="log"
    )
    with torch.no_grad():
        logmel = Spectrogram(config)(waveform)  # (B, n_mels, frames)
    return torch.cat([logmel.mean(dim=-1), logmel.std(dim=-1)], dim=1)  # (B, 2 * n_mels)


def logmel_embeddings(clips: list[np.ndarray], sample_rate: int) -> np.ndarray:
    """(N, 256) log-mel statistics of clips at ``sample_rate`` (resampled to 16 kHz; a clip
    shorter than one FFT frame is zero-padded to it)."""
    import torch

    rows = []
    for clip in clips:
        audio = audio_io.resample(clip, sample_rate, LOGMEL_SAMPLE_RATE)
        audio = np.pad(audio, (0, max(0, 512 - len(audio))))
        waveform = torch.from_numpy(np.ascontiguousarray(audio, np.float32))[None]  # (1, T)
        rows.append(logmel_stats_embedding(waveform, LOGMEL_SAMPLE_RATE)[0].numpy())
    return np.stack(rows)  # (N, 256)


def model_embeddings(clips: list[np.ndarray], embedder) -> np.ndarray:
    """(N, D) per clip (at ``embedder.sample_rate``): the mean over its windows of
    ``window_s`` of the encoder's tokens over the patches each window covers."""
    window = round(embedder.window_s * embedder.sample_rate)
    patch_samples = embedder.patch_s() * embedder.sample_rate
    pieces, owners, covered = [], [], []
    for i, clip in enumerate(clips):
        for start in range(0, max(1, len(clip)), window):
            piece = np.zeros(window, np.float32)
            chunk = clip[start : start + window]
            piece[: len(chunk)] = chunk
            pieces.append(piece)
            owners.append(i)
            covered.append(len(chunk))
    rows = np.zeros((len(pieces), embedder.dim), np.float32)
    for a in range(0, len(pieces), embedder.batch_size):
        grids = embedder.tokens(np.stack(pieces[a : a + embedder.batch_size]))  # (B, F, T, D)
        for j, grid in enumerate(grids):
            n = max(1, min(grid.shape[1], math.ceil(covered[a + j] / patch_samples)))
            rows[a + j] = grid[:, :n].mean(axis=(0, 1))
    owners = np.asarray(owners)
    return np.stack([rows[owners == i].mean(axis=0) for i in range(len(clips))])  # (N, D)


def resolve_model(name: str) -> Path:
    """``embedding`` (the shipped embedding model), ``detector`` (the starter detector) or a
    model file path (:func:`biomae.embed.resolve_embedding_model`), checked to exist."""
    from biomae.embed import resolve_embedding_model

    path = resolve_embedding_model(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"embedding model {name!r}: {path} not found (give a model file, embedding or detector)"
        )
    return path


# ----------------------------------------------------------------------------------------------
# Scoring


def score_embeddings(embeddings: np.ndarray, labels: list[str]) -> dict:
    """1-NN (leave-one-out), linear-probe accuracy and chance of one set."""

    counts = pd.Series(labels).value_counts()
    n_folds = int(min(5, counts.min()))
    probe = linear_probe_accuracy(embeddings, labels, ProbeConfig(n_folds=n_folds))
    return {
        "n_clips": len(labels),
        "n_labels": len(counts),
        "nn_accuracy": nearest_neighbour_accuracy(embeddings, labels),
        "probe_accuracy": probe["accuracy"],
        "probe_folds": n_folds,
        "chance": float(counts.max() / len(labels)),
    }


def probe_sets(
    sets: dict[str, pd.DataFrame], models: list[str], *, birdnet: bool = True, log=sys.stderr
) -> tuple[list[dict], list[str]]:
    """Score ``logmel``, each of ``models`` and (when ``birdnet`` and available) BirdNET on every
    set; ``(rows, notes)`` with one row per set and embedding."""
    from biomae.embed import Embedder
    from biomae.evaluate import birdnet_embeddings

    embedders = {name: Embedder(resolve_model(name), device="cpu") for name in models}
    notes, use_birdnet = [], birdnet
    if birdnet and (reason := birdnet_embeddings.unavailable()):
        notes.append(f"birdnet: left out ({reason})")
        use_birdnet = False
    rows = []
    for set_name, table in sets.items():
        table, base_clips, bad = readable(table, set_name)
        notes += bad
        if table is None:
            continue
        print(f"embeddings: {set_name}: {len(table)} clips", file=log, flush=True)
        loaded = {BASE_SAMPLE_RATE: base_clips}  # the clips at each sample rate used
        labels = table["label"].tolist()
        for kind in ["logmel", *embedders, *(["birdnet"] if use_birdnet else [])]:
            embedder = embedders.get(kind)
            rate = embedder.sample_rate if embedder else BASE_SAMPLE_RATE
            if rate not in loaded:
                loaded[rate] = load_clips(table, rate)
            if embedder is not None:
                embeddings = model_embeddings(loaded[rate], embedder)
            elif kind == "logmel":
                embeddings = logmel_embeddings(loaded[rate], rate)
            else:
                embeddings = birdnet_embeddings.embed(loaded[rate], rate)
            rows.append(
                {"set": set_name, "embedding": kind, **score_embeddings(embeddings, labels)}
            )
    return rows, notes


def summary_table(rows: list[dict]) -> pd.DataFrame:
    """Per embedding: mean 1-NN and probe accuracy over the sets, then each set's 1-NN."""
    frame = pd.DataFrame(rows)
    wide = frame.pivot(index="embedding", columns="set", values="nn_accuracy")
    means = frame.groupby("embedding")[["nn_accuracy", "probe_accuracy"]].mean()
    out = means.rename(columns=lambda c: f"mean_{c}").join(wide)
    return out.sort_values("mean_nn_accuracy", ascending=False)


def run_embeddings(
    model, out_dir: Path, *, data_root=None, sample_rate=16000, max_clip_s=30.0, max_clips=None
) -> dict:
    """The ``embeddings`` benchmark suite (``biomae evaluate --model M --suite embeddings``): the
    shared data's clip sets scored with ``logmel`` and, unless ``model`` is ``logmel``, the model;
    ``max_clips`` caps each set (first by path within each label, in turn). ``sample_rate`` and
    ``max_clip_s`` are kept for callers; the spans are :data:`MAX_CLIP_S` long."""

    del sample_rate, max_clip_s
    data_root = Path(data_root or DEFAULT_DATA_ROOT)
    if not (data_root / "index" / "clips.csv").is_file():
        raise Skipped(f"shared data folder {data_root} (index/clips.csv) not found")
    if model != "logmel" and not Path(model).is_file():
        raise FileNotFoundError(f"model {model!r} is neither a file nor the name logmel")
    sets, notes = clip_sets(data_root)
    if max_clips is not None:
        for name in list(sets):
            table = sets[name]
            rank = table.sort_values("path").groupby("label").cumcount()
            table, note = usable(table.loc[rank.sort_values(kind="stable").index[:max_clips]], name)
            notes += note
            if table is None:
                del sets[name]
            else:
                sets[name] = table
    if not sets:
        raise Skipped(f"no clip-labelled source in {data_root} has >= 2 labels of >= 2 clips")
    models = [] if model == "logmel" else [str(model)]
    rows, more = probe_sets(sets, models, birdnet=False)
    for row in rows:
        row["source"] = row.pop("set")
    return {
        "suite": "embeddings",
        "model": str(model),
        "protocol": "leave-one-out 1-NN and k-fold linear probe per source",
        "rows": rows,
        "notes": notes + more,
    }
