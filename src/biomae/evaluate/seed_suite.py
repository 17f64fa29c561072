"""The ``seed`` suite: the seed paper's zero-shot benchmarks, read from local copies.

Users download the datasets themselves and pass ``data_root``, a folder holding each in its
documented layout (``biomae data info NAME`` prints it) under the adapter's name:

    DATA_ROOT/dcase_fewshot/  ena_birds/  hiceas/  rfcx/  hainan_gibbons/  esc50/  watkins/

A dataset that is absent (or whose layout is wrong) is reported and skipped, never replaced by
anything else. Every recording of a dataset is scored (zero-shot: nothing is trained on it);
``max_recordings`` takes the first recordings by path.

Protocols:

- **Detection** (dcase, enabirds, hiceas, rainforest, gibbons): the detector runs on each recording
  and is scored by :func:`biomae.evaluate.benchmarks.score_detection` (class-agnostic event F1 at
  IoU >= 0.3 over whole files; rfcx is partially annotated, so its precision is a lower bound).
  Then the clip-level protocol of BEANS-Zero-style label-set scoring: each recording is cut into
  consecutive clips of ``clip_s`` (10 s; the last clip may be shorter); a clip's true label set is
  the labels of the reference events whose midpoint lies in it, its predicted set the labels of the
  predicted events whose midpoint lies in it; ``clip_label_f1`` is the micro F1 over clips of
  :func:`biomae.metrics.clips.multilabel_f1`. A class-agnostic detector labels its events "call",
  which names no species, so ``clip_presence_f1`` repeats the scoring with every label replaced by
  "call" (is any call in the clip?). The clip length is our choice: the seed's own clip lengths
  were not checked.
- **Classification** (esc, watkins): one clip per file; the predicted label is the label of the
  highest-scoring event in the clip (none when nothing is detected); ``accuracy`` is the fraction
  of clips whose predicted label equals the clip's label. A class-agnostic detector scores 0.

Beside each number the summary prints the seed's NatureLM-audio figure for that dataset
(``seed_reference``: F1 for detection, accuracy for classification) — quoted from the paper, not
measured here; the protocols differ, so the two columns are context, not a like-for-like comparison.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biomae import audio as audio_io
from biomae.evaluate.benchmarks import Skipped, load_detector, model_name, predict, score_detection
from biomae.metrics.clips import clip_accuracy, multilabel_f1


@dataclass(frozen=True)
class SeedDataset:
    """One seed benchmark: its key, adapter, task and the paper's NatureLM-audio figure."""

    key: str
    adapter: str
    task: str  # "detection" or "classification"
    reference: float
    reference_metric: str


SEED_DATASETS = (
    SeedDataset("dcase", "dcase_fewshot", "detection", 0.282, "F1"),
    SeedDataset("enabirds", "ena_birds", "detection", 0.902, "F1"),
    SeedDataset("hiceas", "hiceas", "detection", 0.304, "F1"),
    SeedDataset("rainforest", "rfcx", "detection", 0.111, "F1"),
    SeedDataset("gibbons", "hainan_gibbons", "detection", 0.041, "F1"),
    SeedDataset("esc", "esc50", "classification", 0.719, "accuracy"),
    SeedDataset("watkins", "watkins", "classification", 0.431, "accuracy"),
)
REFERENCE_NOTE = "seed_reference: NatureLM-audio, quoted from the seed paper (not measured here)"


def clip_label_sets(
    events: pd.DataFrame, durations_s: dict[str, float], clip_s: float, *, agnostic: bool = False
) -> list[set[str]]:
    """Per clip the labels of the events whose midpoint lies in it (all ``"call"`` if ``agnostic``).

    Clips follow the recordings in ``durations_s`` order, each cut into clips of ``clip_s`` in time
    order (the last may be shorter); an event ending past the recording counts in its last clip.
    """
    if not clip_s > 0:
        raise ValueError(f"clip_s={clip_s} must be > 0 seconds")
    sets: list[set[str]] = []
    for recording, duration_s in durations_s.items():
        n_clips = max(1, int(np.ceil(duration_s / clip_s - 1e-9)))
        mine = events[events["recording"] == recording]
        middle = ((mine["start_s"] + mine["end_s"]) / 2).to_numpy()
        clip = np.minimum((middle // clip_s).astype(int), n_clips - 1)
        labels = ["call"] * len(mine) if agnostic else mine["label"].astype(str).tolist()
        found: list[set[str]] = [set() for _ in range(n_clips)]
        for k, label in zip(clip, labels, strict=True):
            found[k].add(label)
        sets.extend(found)
    return sets


def _detection(dataset, detector, recordings, events, out_dir: Path, clip_s: float) -> dict:
    recordings = recordings.assign(source=dataset.key, regions=None)
    rows, predictions = score_detection(detector, recordings, events, out_dir / dataset.key)
    durations = {p: audio_io.info(p).duration_s for p in recordings["path"]}
    scores = {}
    for name, agnostic in (("clip_label_f1", False), ("clip_presence_f1", True)):
        truth = clip_label_sets(events, durations, clip_s, agnostic=agnostic)
        guess = clip_label_sets(predictions, durations, clip_s, agnostic=agnostic)
        scores[name] = multilabel_f1(truth, guess)["micro"].f1
    return {**rows[-1], "n_clips": len(truth), **scores}


def _classification(detector, recordings, events) -> dict:
    truth = events.groupby("recording")["label"].first()
    paths = [p for p in recordings["path"] if p in truth.index]
    predictions = predict(detector, paths)
    guesses = []
    for path in paths:
        mine = predictions[predictions["recording"] == path]
        best = mine.sort_values("score", ascending=False, kind="stable", na_position="last")
        guesses.append(str(best["label"].iloc[0]) if len(best) else "")
    return {
        "n_recordings": len(paths),
        "accuracy": clip_accuracy([str(truth[p]) for p in paths], guesses),
    }


def run_seed(
    model,
    out_dir: Path,
    *,
    data_root=None,
    max_recordings=None,
    clip_s=10.0,
    birdnet_threshold=0.1,
    datasets=None,
) -> dict:
    """The ``seed`` suite (module docstring); ``datasets`` limits it to some keys."""
    # the datasets: imported when used, so that `import biomae.evaluate.seed_suite` stays without it
    from biomae.datasets.registry import LayoutError, get_adapter

    if data_root is None:
        raise ValueError("the seed suite needs data_root (--data-root DIR with the datasets)")
    data_root = Path(data_root)
    chosen = [d for d in SEED_DATASETS if datasets is None or d.key in datasets]
    detector = load_detector(model, birdnet_threshold=birdnet_threshold)
    rows, notes = [], [REFERENCE_NOTE]
    for dataset in chosen:
        root = data_root / dataset.adapter
        base = {"dataset": dataset.key, "task": dataset.task, "seed_reference": dataset.reference}
        try:
            recordings, events = get_adapter(dataset.adapter).load(root)
        except (LayoutError, FileNotFoundError) as err:
            first_line = str(err).splitlines()[0]
            notes.append(f"{dataset.key}: skipped, no usable local copy at {root} ({first_line})")
            print(f"seed suite: {dataset.key} skipped: {first_line}", file=sys.stderr)
            rows.append({**base, "status": "missing"})
            continue
        recordings = recordings.sort_values("path").reset_index(drop=True)
        if max_recordings is not None:
            recordings = recordings.head(max_recordings)
        events = events[events["recording"].isin(recordings["path"])].reset_index(drop=True)
        if dataset.task == "detection":
            scored = _detection(dataset, detector, recordings, events, out_dir, clip_s)
        else:
            scored = _classification(detector, recordings, events)
        rows.append({**base, "status": "scored", **scored})
    if all(r["status"] == "missing" for r in rows):
        raise Skipped(f"none of the seed datasets found under {data_root}: " + "; ".join(notes[1:]))
    columns = [
        "dataset",
        "task",
        "status",
        "n_recordings",
        "event_f1",
        "clip_label_f1",
        "clip_presence_f1",
        "accuracy",
        "seed_reference",
    ]
    rows = pd.DataFrame(rows).reindex(columns=columns).to_dict("records")
    return {
        "suite": "seed",
        "model": model_name(model),
        "protocol": f"see biomae.evaluate.seed_suite; clip_s={clip_s:g}",
        "rows": rows,
        "notes": notes,
    }
