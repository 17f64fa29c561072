"""The ``embeddings`` suite: few-shot classification of clip-labelled sets from embeddings.

Data: the clip-labelled recordings of the shared data folder (``data_root``/index/clips.csv),
grouped by ``source``. Inside a source, labels with fewer than 2 clips are dropped, and a source
is scored when at least 2 labels remain (today: gibbon_workflow, behaviouR; sources left out are
listed in the summary's notes with the reason).

Embeddings: ``logmel`` — :func:`logmel_stats_embedding` (the baseline any learned embedding
should beat: mean and standard deviation over time of each log-mel band) of the whole clip
resampled to ``sample_rate`` (16 kHz) — always; and, when ``model`` is a path, the model's
:class:`biomae.embed.Embedder` window embeddings averaged over the clip's windows.

Protocol, per source and embedding: leave-one-out 1-NN accuracy (cosine,
:func:`biomae.metrics.probes.nearest_neighbour_accuracy`) and the stratified k-fold linear probe
(:func:`biomae.metrics.probes.linear_probe_accuracy`, ``k = min(5, smallest class size)``),
beside the majority-class rate (``chance``). Clips are cut to their first ``max_clip_s`` (30 s).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from biomae import audio as audio_io
from biomae.embed import Embedder
from biomae.evaluate.benchmarks import DEFAULT_DATA_ROOT, Skipped
from biomae.metrics.probes import ProbeConfig, linear_probe_accuracy, nearest_neighbour_accuracy


def clip_sets(data_root: Path, min_per_label: int = 2, min_labels: int = 2):
    """``(sets, notes)``: per scored source a table ``path, label``; notes on sources left out."""
    clips = pd.read_csv(data_root / "index" / "clips.csv", dtype=str, keep_default_na=False)
    sets, notes = {}, []
    for source, rows in clips.groupby("source", sort=True):
        counts = rows["label"].value_counts()
        kept = rows[rows["label"].isin(counts[counts >= min_per_label].index)]
        n_labels = kept["label"].nunique()
        if n_labels < min_labels:
            notes.append(
                f"{source}: left out ({len(rows)} clips, {rows['label'].nunique()} labels; "
                f"{n_labels} label(s) with >= {min_per_label} clips)"
            )
            continue
        if len(kept) < len(rows):
            notes.append(f"{source}: {len(rows) - len(kept)} clip(s) of rare labels left out")
        sets[source] = pd.DataFrame(
            {"path": [str(data_root / f) for f in kept["file"]], "label": kept["label"].tolist()}
        )
    return sets, notes


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


def logmel_embeddings(paths, sample_rate: int = 16000, max_clip_s: float = 30.0) -> np.ndarray:
    """(N, 256) log-mel statistics of each clip (mono, resampled, first ``max_clip_s``)."""
    import torch

    rows = []
    for path in paths:
        audio, _ = audio_io.load(path, sample_rate=sample_rate, duration_s=None)
        audio = audio[: round(max_clip_s * sample_rate)]
        waveform = torch.from_numpy(np.ascontiguousarray(audio, np.float32))[None]  # (1, T)
        rows.append(logmel_stats_embedding(waveform, sample_rate)[0].numpy())
    return np.stack(rows)  # (N, 256)


def model_embeddings(paths, model_path: Path, max_clip_s: float = 30.0) -> np.ndarray:
    """(N, D) mean of the model's window embeddings over the first ``max_clip_s`` of each clip."""

    embedder = Embedder(model_path, device="auto")
    rows = []
    for path in paths:
        table = embedder.embed_windows(path)
        table = table[table["start_s"] < max_clip_s]
        rows.append(np.mean(np.stack(table["embedding"].to_list()), axis=0))  # (D,)
    return np.stack(rows)  # (N, D)


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


def run_embeddings(
    model, out_dir: Path, *, data_root=None, sample_rate=16000, max_clip_s=30.0, max_clips=None
) -> dict:
    """The ``embeddings`` suite (module docstring); ``max_clips`` caps each source (first by
    path within each label, in turn)."""

    data_root = Path(data_root or DEFAULT_DATA_ROOT)
    if not (data_root / "index" / "clips.csv").is_file():
        raise Skipped(f"shared data folder {data_root} (index/clips.csv) not found")
    if model != "logmel" and not Path(model).is_file():
        raise FileNotFoundError(f"model {model!r} is neither a file nor the name logmel")
    sets, notes = clip_sets(data_root)
    rows = []
    for source, table in sets.items():
        if max_clips is not None:
            rank = table.sort_values("path").groupby("label").cumcount()
            table = table.loc[rank.sort_values(kind="stable").index[:max_clips]]
            counts = table["label"].value_counts()
            table = table[table["label"].isin(counts[counts >= 2].index)]
            if table["label"].nunique() < 2:
                notes.append(f"{source}: left out, max_clips={max_clips} leaves < 2 labels")
                continue
        print(f"embeddings: {source}: {len(table)} clips", file=sys.stderr, flush=True)
        labels = table["label"].tolist()
        kinds = {"logmel": lambda t=table: logmel_embeddings(t["path"], sample_rate, max_clip_s)}
        if model != "logmel":
            kinds[str(model)] = lambda t=table: model_embeddings(t["path"], Path(model), max_clip_s)
        for name, embed in kinds.items():
            rows.append({"source": source, "embedding": name, **score_embeddings(embed(), labels)})
    if not rows:
        raise Skipped(f"no clip-labelled source in {data_root} has >= 2 labels of >= 2 clips")
    return {
        "suite": "embeddings",
        "model": str(model),
        "protocol": "leave-one-out 1-NN and k-fold linear probe per source",
        "rows": rows,
        "notes": notes,
    }
