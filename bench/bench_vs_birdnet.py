"""Benchmark: biomae annotate vs BirdNET V2.4 on the same real recordings, 2 CPU cores, one run.

Stitches ``--minutes`` of real audio from ../shared/data (32 kHz WAV), then times, each as a whole
command (start-up included, as a user meets it):

1. ``biomae annotate --detector energy``;
2. ``biomae annotate --model M`` — M is ``--model`` (a fine-tuned detector), or else a freshly built
   detection model of the ``--preset`` architecture (untrained weights: its speed is the
   architecture's, its detections mean nothing — said so in the output);
3. BirdNET V2.4 (TFLite via the ``birdnet`` package, in its own venv: bench/peers/setup_birdnet.sh).

Prints real-time factors (seconds of audio per second of wall time) and biomae's speed relative to
BirdNET's. Threads: both sides are limited to 2 (OMP/MKL threads; BirdNET's ``n_workers=2``).

    python bench/bench_vs_birdnet.py [--minutes 10] [--model best.safetensors] [--preset tiny]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
BIRDNET_PYTHON = Path(
    os.environ.get("BIOMAE_BIRDNET_PYTHON", REPO / ".peers/birdnet-venv/bin/python")
)


def build_model(preset: str, out: Path) -> Path:
    """A detection model of ``preset``'s architecture with random weights (speed only)."""
    import torch

    from biomae.train.finetune import build_model as build
    from biomae.train.finetune import config_from_dict, save_finetuned

    config = config_from_dict(
        {
            "data": {"data_dir": str(out), "window_s": 5.12, "batch_size": 16},
            "model": {"preset": preset},
            "front_end": {"sample_rate": 32000, "n_fft": 1024, "n_mels": 128},
            "head": {"task": "detect", "upsample": 8},
            "train": {"out_dir": str(out)},
        }
    )
    torch.manual_seed(0)
    path = out / f"untrained_{preset}.safetensors"
    save_finetuned(build(config), config, path, extra={})
    return path


def timed(cmd: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    from bench_annotate import stitch

    work = Path(tempfile.mkdtemp(prefix="bench_vs_birdnet_"))
    flac = work / "stitched.flac"
    duration_s = stitch(flac, args.minutes / 60)
    wav = work / "stitched.wav"  # the same audio as WAV for both tools
    audio, rate = sf.read(flac, dtype="float32")
    sf.write(wav, audio, rate)
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    biomae = [
        sys.executable,
        "-m",
        "biomae",
        "annotate",
        str(wav),
        "--quiet",
        "--overwrite",
        "--format",
        "csv",
    ]
    results = {}
    results["biomae energy detector"] = timed(biomae + ["--out", str(work / "energy")], env)
    model = args.model or build_model(args.preset, work)
    label = "biomae model" + ("" if args.model else f" ({args.preset} architecture, untrained)")
    results[label] = timed(biomae + ["--out", str(work / "model"), "--model", str(model)], env)
    if BIRDNET_PYTHON.exists():
        out = subprocess.run(
            [
                str(BIRDNET_PYTHON),
                str(REPO / "bench/peers/birdnet_predict.py"),
                str(work / "birdnet.csv"),
                str(wav),
                "--workers",
                "2",
            ],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        )
        results["BirdNET V2.4 (TFLite, prediction only)"] = float(
            re.search(r"wall_s=([0-9.]+)", out.stdout).group(1)
        )
    else:
        print(f"BirdNET not found at {BIRDNET_PYTHON}: run bench/peers/setup_birdnet.sh")
    print(f"audio: {duration_s / 60:.1f} min of real recordings stitched, 32 kHz")
    for name, wall_s in results.items():
        print(f"{name:50s} {wall_s:7.1f} s  {duration_s / wall_s:7.1f}x real time")
    birdnet = [v for k, v in results.items() if k.startswith("BirdNET")]
    if birdnet:
        for name, wall_s in results.items():
            if name.startswith("biomae"):
                print(f"{name}: {birdnet[0] / wall_s:.2f}x BirdNET's throughput")


if __name__ == "__main__":
    main()
