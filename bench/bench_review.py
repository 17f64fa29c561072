"""Benchmark: `biomae review` serving a run of 10,000 events.

Writes an annotate folder of ``--recordings`` synthetic one-hour FLAC recordings at 32 kHz (noise
with tones) holding ``--events`` events in all (random times, frequency boxes, scores, three
labels), reviews half of them, then times through the app's HTTP stack (Starlette's in-process
test client, no network): listing a page of events unfiltered and with each filter, an event's
spectrogram PNG and WAV clip (events spread over the hours, so every read seeks), and saving one
decision. Prints the median and the worst of each.

    python bench/bench_review.py [--events 10000] [--recordings 4] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

SAMPLE_RATE = 32000


def make_run(out: Path, n_events: int, n_recordings: int, hours: float) -> None:
    """An annotate folder (summary.csv, events.parquet, run.json, manifest.jsonl) and its audio."""
    rng = np.random.default_rng(0)
    audio_dir = out.parent / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    n_samples = int(hours * 3600 * SAMPLE_RATE)
    rows, manifest, tables = [], [], []
    for r in range(n_recordings):
        path = audio_dir / f"site{r}.flac"
        if not path.exists():
            with sf.SoundFile(path, "w", SAMPLE_RATE, 1, "PCM_16") as f:
                block = SAMPLE_RATE * 60
                t = np.arange(block) / SAMPLE_RATE
                for start in range(0, n_samples, block):
                    tone = 0.2 * np.sin(2 * np.pi * (3000 + 500 * (start // block % 7)) * t)
                    f.write((rng.normal(0, 0.05, block) + tone * (t % 1 < 0.2)).astype(np.float32))
        key = f"audio/site{r}"
        k = n_events // n_recordings
        start_s = np.sort(rng.uniform(0, hours * 3600 - 1, k))
        low_hz = rng.uniform(500, 6000, k)
        tables.append(
            pd.DataFrame(
                {
                    "recording": str(path),
                    "start_s": start_s,
                    "end_s": start_s + rng.uniform(0.02, 0.5, k),
                    "low_hz": low_hz,
                    "high_hz": low_hz + rng.uniform(500, 4000, k),
                    "label": rng.choice(["call", "song", "trill"], k),
                    "score": rng.uniform(0.3, 1, k),
                    "channel": 1,
                    "taxon": "",
                    "individual": "",
                    "call_type": "",
                    "source": "bench",
                }
            )  # fmt: skip
        )
        duration_s = n_samples / SAMPLE_RATE
        rows.append({"key": key, "path": str(path), "status": "done", "n_events": k,
                     "duration_s": duration_s, "sample_rate": SAMPLE_RATE})  # fmt: skip
        manifest.append(rows[-1] | {"resolved": str(path.resolve())})
    pd.DataFrame(rows).to_csv(out / "summary.csv", index=False)
    pd.concat(tables, ignore_index=True).to_parquet(out / "events.parquet")
    (out / "run.json").write_text("{}")
    (out / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in manifest))


def timed(client, method: str, path: str, repeats: int, **kwargs) -> list[float]:
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        response = getattr(client, method)(path.format(i=i), **kwargs)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.text[:200])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--recordings", type=int, default=4)
    parser.add_argument("--hours", type=float, default=1.0, help="per recording")
    parser.add_argument("--keep", default=None, help="build the run here and keep it")
    args = parser.parse_args()

    from starlette.testclient import TestClient

    from biomae.review.server import create_app
    from biomae.review.store import ReviewStore

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp) / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / "review.csv").unlink(missing_ok=True)
        make_run(out, args.events, args.recordings, args.hours)
        store = ReviewStore(out, reviewer="bench")
        ids = list(store.table["event_id"])
        rng = np.random.default_rng(1)
        for i, event_id in enumerate(rng.choice(ids, len(ids) // 2, replace=False)):
            store.table.at[event_id, "status"] = "accepted" if i % 4 else "rejected"
        client = TestClient(create_app(store, "t"), headers={"X-Review-Token": "t"})
        picks = [ids[i] for i in rng.choice(len(ids), 20, replace=False)]
        key = next(iter(store.recordings))
        cases = {
            "list (first page of 100)": ("get", "/api/events", 20),
            "list, score >= 0.8": ("get", "/api/events?min_score=0.8", 20),
            "list, label = trill": ("get", "/api/events?label=trill", 20),
            "list, one recording": ("get", f"/api/events?recording={key}", 20),
            "list, not reviewed, page 20": ("get", "/api/events?reviewed=no&offset=2000", 20),
        }
        timed(client, "get", f"/api/spec/{picks[0]}", 1)  # first call imports torch
        size = f"{args.recordings} x {args.hours:g} h recordings"
        print(f"biomae review, {len(ids)} events in {size}")
        print(f"{'request':34s} {'median ms':>10s} {'max ms':>8s}")
        figures = {name: timed(client, *case) for name, case in cases.items()}
        figures["spectrogram PNG of an event"] = [
            t for p in picks for t in timed(client, "get", f"/api/spec/{p}", 1)
        ]
        figures["WAV clip of an event"] = [
            t for p in picks for t in timed(client, "get", f"/api/audio/{p}", 1)
        ]
        figures["save a decision (review.csv)"] = [
            t
            for p in picks
            for t in timed(client, "post", f"/api/decide/{p}", 1, json={"status": "accepted"})
        ]
        for name, times in figures.items():
            print(f"{name:34s} {statistics.median(times):10.1f} {max(times):8.1f}")


if __name__ == "__main__":
    main()
