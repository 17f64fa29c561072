"""Benchmark: the starter model on torch, ONNX Runtime fp32 and ONNX Runtime int8, 2 cores.

On the starter's 27 held-out test recordings (bfsongrepo and koumura_bird0 files it never trained
on: ``src/biomae/data/STARTER_MODEL_CARD.md``), from ../shared/data:

- frame scores: the largest absolute difference of ONNX fp32 and int8 from torch;
- events: agreement of ONNX fp32 and int8 with torch (event F1 at IoU >= 0.3, torch's events as
  the reference: 1.0 = the same calls found) — agreement, not accuracy against human labels;
- speed: windows scored per second and the real-time factor of scoring alone (the model's part of
  ``biomae annotate``), each runtime on the same windows.

    python bench/bench_onnx.py
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BIOMAE_SHARED_DATA", REPO.parent / "shared" / "data"))


def held_out() -> list[Path]:
    card = (REPO / "src" / "biomae" / "data" / "STARTER_MODEL_CARD.md").read_text()
    line = next(x for x in card.splitlines() if x.startswith("Held-out test recordings"))
    return [SHARED / p for p in re.findall(r"(audio/\S+?\.flac)", line)]


def main() -> None:
    from biomae.detectors.model import InferConfig, ModelDetector
    from biomae.export import export_onnx
    from biomae.metrics.events import MatchConfig, event_f1

    files = held_out()
    work = Path(tempfile.mkdtemp(prefix="bench_onnx_"))
    started = time.perf_counter()
    fp32 = export_onnx("starter", work / "starter.onnx")
    int8 = export_onnx("starter", work / "starter_int8.onnx", int8=True)
    print(f"export fp32 + int8: {time.perf_counter() - started:.0f} s; sizes "
          f"{fp32.stat().st_size / 1e6:.1f} MB and {int8.stat().st_size / 1e6:.1f} MB")  # fmt: skip
    runs = {"torch": "starter", "onnx fp32": fp32, "onnx int8": int8}
    scores, events, speed = {}, {}, {}
    for name, model in runs.items():
        detector = ModelDetector(model, InferConfig(runtime="torch" if name == "torch" else "auto"))
        scores[name] = [detector.frame_scores(f)[0] for f in files]
        events[name] = pd.concat([detector.detect_file(f, str(f)) for f in files])
        windows = np.random.default_rng(0).standard_normal((16, detector.window_samples))
        windows = (0.05 * windows).astype(np.float32)
        detector.scorer.window_probs(windows)  # warm
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            detector.scorer.window_probs(windows)
            timings.append(time.perf_counter() - started)
        speed[name] = 16 / np.median(timings)
        window_s = detector.window_samples / detector.sample_rate
        print(f"{name:10s} {speed[name]:6.1f} windows/s = {speed[name] * window_s:6.0f}x real "
              f"time (scoring only), {len(events[name])} events")  # fmt: skip
    for name in ("onnx fp32", "onnx int8"):
        diff = max(np.abs(a - b).max() for a, b in zip(scores[name], scores["torch"], strict=True))
        f1 = event_f1(events[name], events["torch"], MatchConfig(iou_threshold=0.3)).overall.f1
        print(f"{name}: frame scores max |diff| from torch {diff:.2e}; event agreement with "
              f"torch F1 {f1:.4f}; {speed[name] / speed['torch']:.2f}x torch's speed")  # fmt: skip
    print(f"{len(files)} recordings, {os.environ['OMP_NUM_THREADS']} threads, load average "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
