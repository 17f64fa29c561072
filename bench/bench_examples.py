"""Benchmark: labels from examples and few-shot detection on the development recordings.

Data: ``$BIOMAE_SHARED_DATA`` (default ``../shared/data``): Bengalese-finch syllables of bfsongrepo
(birds bl26lb16 and gy6or6, 30-s recordings) and koumura_bird0 (5-10 s recordings), labelled by
syllable type. Detector: the shipped starter model (class-agnostic), run once per recording.
Embeddings: :func:`biomae.examples.default_embedder` (today the starter's encoder).

1. **Labelling from examples** (``labels``): per bird, the syllable types with at least 20
   events; for each test recording, 5 examples per type drawn at random from the bird's *other*
   recordings (isolated clips, as ``DIR/<label>/`` would hold). Each detected event that matches a
   reference syllable (IoU >= 0.3, one-to-one) is scored: accuracy = right label / matched
   (``unknown`` counts as wrong), with the unknown rate and the accuracy on those labelled. The
   same on the reference syllables themselves (perfect detection) separates labelling from
   detection.
2. **Few-shot detection** (``fewshot``, DCASE-style): per recording and syllable type with at
   least 10 events there, the first 5 are the shots; the rest are the reference; predictions
   starting before the end of the 5th shot are ignored. Event F1 at IoU >= 0.3 of the
   class-agnostic detector alone (all its events) against :class:`biomae.fewshot.FewShotDetector`
   in each mode; mean F1 over tasks and pooled F1.
3. **Cost** (``cost``): a 10-min recording (bfsongrepo recordings concatenated): seconds to
   annotate it with the starter model, and to embed its events.

    python bench/bench_examples.py [labels fewshot cost] [--max-test 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from biomae import audio as audio_io
from biomae.detectors import make_detector
from biomae.examples import Labeller, default_embedder
from biomae.fewshot import FewShotConfig, FewShotDetector
from biomae.metrics.events import MatchConfig, event_f1
from biomae.spans import embed_spans

DATA = Path(
    os.environ.get("BIOMAE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared/data")
)
BIRDS = {"bfsongrepo bl26lb16": "bl26lb16", "bfsongrepo gy6or6": "gy6or6", "koumura bird0": "Bird0"}


# labeller variants: (name, method, centre, keep an unknown threshold)
VARIANTS = [
    ("nearest, centred (default)", "nearest", True, True),
    ("nearest, no unknown", "nearest", True, False),
    ("prototype, centred", "prototype", True, True),
    ("nearest, not centred", "nearest", False, True),
]


def reference() -> pd.DataFrame:
    events = pd.read_csv(DATA / "index/events.csv")
    events = events[events["source"].isin(["bfsongrepo", "koumura_bird0"])].copy()
    events["bird"] = ""
    for name, key in BIRDS.items():
        events.loc[events["file"].str.contains(key), "bird"] = name
    events = events[events["bird"] != ""]
    return events.rename(columns={"onset_s": "start_s", "offset_s": "end_s"})


def as_events(frame: pd.DataFrame, recording: str) -> pd.DataFrame:
    from biomae.annotations import make_events

    return make_events(frame[["start_s", "end_s", "label"]].assign(recording=recording))


class Detections:
    """The starter model's events per recording, computed once."""

    def __init__(self, device: str):
        self.detector = make_detector("auto", model_options={"device": device})
        self.cache: dict[str, pd.DataFrame] = {}

    def __call__(self, path: str) -> pd.DataFrame:
        if path not in self.cache:
            self.cache[path] = self.detector.detect_file(path, path)
        return self.cache[path]


def bench_labels(ref, detections, embedder, max_test: int, rng) -> None:
    print("\n== labelling from 5 examples per class (taken from other recordings) ==")
    print(
        "bird | classes | test recordings | labeller | detected syllables: matched, accuracy, "
        "unknown, accuracy of those labelled | reference syllables: accuracy, unknown"
    )
    for bird, events in ref.groupby("bird"):
        counts = events["label"].value_counts()
        classes = sorted(counts[counts >= 20].index)
        events = events[events["label"].isin(classes)]
        files = sorted(events["file"].unique())
        tests = list(rng.choice(files, size=min(max_test, len(files)), replace=False))
        results: dict[str, list] = {}
        for test in tests:
            path = str(DATA / test)
            others = events[events["file"] != test]
            seeds = rng.integers(1 << 30, size=len(classes))
            groups = [g for _, g in others.groupby("label")]
            picks = pd.concat(
                [g.sample(5, random_state=int(s)) for s, g in zip(seeds, groups, strict=True)]
            )
            by_file = list(picks.groupby("file", sort=False))
            ex = np.concatenate(
                [embed_spans(embedder, str(DATA / f), g["start_s"], g["end_s"]) for f, g in by_file]
            )
            ex_labels = np.concatenate([g["label"].to_numpy() for _, g in by_file])
            truth = as_events(events[events["file"] == test], path)
            pred = detections(path)
            pred_vec = embed_spans(embedder, path, pred["start_s"], pred["end_s"])
            truth_vec = embed_spans(embedder, path, truth["start_s"], truth["end_s"])
            pairs = event_f1(pred, truth, MatchConfig(iou_threshold=0.3)).pairs
            for name, method, centre, unknown in VARIANTS:
                labeller = Labeller.fit(ex, ex_labels, method, centre)
                if not unknown:
                    labeller.threshold = -np.inf
                got, _ = labeller.predict(pred_vec[pairs[:, 0]])
                want = truth["label"].to_numpy()[pairs[:, 1]]
                ref_got, _ = labeller.predict(truth_vec)
                results.setdefault(name, []).append((got, want, ref_got, truth["label"]))
        for name, rows in results.items():
            got, want, ref_got, ref_want = (
                np.concatenate([np.asarray(r[i], dtype=object) for r in rows]) for i in range(4)
            )
            labelled = got != "unknown"
            right = np.mean(got[labelled] == want[labelled]) if labelled.any() else float("nan")
            print(
                f"{bird} | {len(classes)} | {len(tests)} | {name} | {len(got)}, "
                f"{np.mean(got == want):.3f}, {np.mean(~labelled):.3f}, {right:.3f} | "
                f"{np.mean(ref_got == ref_want):.3f}, {np.mean(ref_got == 'unknown'):.3f}"
            )
        sys.stdout.flush()


def f1(counts) -> float:
    return 2 * counts.tp / max(1, 2 * counts.tp + counts.fp + counts.fn)


def bench_fewshot(ref, detections, embedder, max_test: int, rng, with_context: bool) -> None:
    print(
        "\n== few-shot detection: first 5 events as shots, the rest scored (event F1, IoU 0.3) =="
    )
    variants = {"detector alone": None}
    for mode in ("detector", "sliding", "both"):
        variants[mode] = (mode, False)
    if with_context:
        variants["both (context)"] = ("both", True)
    totals = {k: [] for k in variants}
    n_tasks = 0
    for _, events in ref.groupby("bird"):
        files = sorted(events["file"].unique())
        tests = list(rng.choice(files, size=min(max_test, len(files)), replace=False))
        for test in tests:
            path = str(DATA / test)
            info = audio_io.info(path)
            pred_all = detections(path)
            here = events[events["file"] == test].sort_values("start_s")
            for _, group in here.groupby("label"):
                if len(group) < 10:
                    continue
                n_tasks += 1
                truth = as_events(group, path)
                shots, rest = truth.iloc[:5], truth.iloc[5:].reset_index(drop=True)
                after = float(shots["end_s"].max())
                for name, variant in variants.items():
                    if variant is None:
                        pred = pred_all[pred_all["start_s"] >= after]
                    else:
                        config = FewShotConfig(mode=variant[0], context=variant[1])
                        finder = FewShotDetector(detections.detector, embedder, shots, config)
                        pred = finder.find(path, pred_all, info)
                    totals[name].append(
                        event_f1(pred, rest, MatchConfig(iou_threshold=0.3)).overall
                    )
    print(f"{n_tasks} tasks (recording x syllable type)")
    for name, rows in totals.items():
        tp, fp, fn = (sum(getattr(r, k) for r in rows) for k in ("tp", "fp", "fn"))
        mean_f1 = np.mean([f1(r) for r in rows])
        pooled = 2 * tp / max(1, 2 * tp + fp + fn)
        print(
            f"{name:22s} mean F1 {mean_f1:.3f} | pooled F1 {pooled:.3f} (tp {tp}, fp {fp}, fn {fn})"
        )


def bench_cost(embedder, device: str) -> None:
    print("\n== cost: a 10-min recording (bfsongrepo recordings concatenated) ==")
    files = sorted((DATA / "audio/hvc").rglob("*.flac"))
    parts, total = [], 0
    for path in files * 4:
        audio, rate = audio_io.load(path)
        parts.append(audio)
        total += len(audio)
        if total >= 600 * rate:
            break
    with tempfile.TemporaryDirectory() as tmp:
        long = Path(tmp) / "ten_minutes.flac"
        audio_io.save(long, np.concatenate(parts)[: 600 * rate], rate)
        detector = make_detector("auto", model_options={"device": device})
        started = time.perf_counter()
        events = detector.detect_file(long, str(long))
        annotate_s = time.perf_counter() - started
        for context in (False, True):
            started = time.perf_counter()
            embed_spans(embedder, long, events["start_s"], events["end_s"], context=context)
            embed_s = time.perf_counter() - started
            print(
                f"{len(events)} events; annotate {annotate_s:.1f} s; embed events "
                f"({'context' if context else 'isolated'}) {embed_s:.1f} s = "
                f"{embed_s / annotate_s:.2f}x"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["labels", "fewshot", "cost"])
    parser.add_argument("--max-test", type=int, default=8, help="test recordings per bird")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--context", action="store_true", help="few-shot: also embed spans in context"
    )
    args = parser.parse_args()
    if not (DATA / "index/events.csv").exists():
        print(f"bench_examples: {DATA} has no index/events.csv (set BIOMAE_SHARED_DATA)")
        return 2
    embedder = default_embedder(args.device)
    embedder.batch_size = 64
    ref = reference()
    detections = Detections(args.device)
    if "labels" in args.parts:
        bench_labels(ref, detections, embedder, args.max_test, np.random.default_rng(0))
    if "fewshot" in args.parts:
        bench_fewshot(
            ref, detections, embedder, args.max_test, np.random.default_rng(1), args.context
        )
    if "cost" in args.parts:
        bench_cost(embedder, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
