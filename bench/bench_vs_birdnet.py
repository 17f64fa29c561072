"""Benchmark: biomae annotate vs BirdNET V2.4 on the same real recordings, 2 CPU cores, one run.

Stitches ``--minutes`` of real audio from ../shared/data (32 kHz WAV), then times, each as a whole
command (start-up included, as a user meets it) and, like BirdNET's figure, the annotation alone
(``biomae.cli.main`` timed inside a process that has already imported its libraries):

1. ``biomae annotate --detector energy``;
2. ``biomae annotate --model M`` — M is ``--model`` (a fine-tuned detector), else the shipped
   starter model, else a freshly built detection model of the starter model's architecture
   (untrained weights: its speed is the architecture's, its detections mean nothing — said so in
   the output);
3. BirdNET V2.4 (TFLite via the ``birdnet`` package, in its own venv: bench/peers/setup_birdnet.sh).

Prints real-time factors (seconds of audio per second of wall time) and biomae's speed relative to
BirdNET's. Threads: both sides are limited to 2 (OMP/MKL threads; BirdNET's ``n_workers=2``).

    python bench/bench_vs_birdnet.py [--minutes 30] [--model best.safetensors]
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


def build_model(out: Path) -> Path:
    """A detection model of the starter model's architecture
    (``biomae/configs/starter_finetune.toml``) with random weights: its speed is the
    architecture's, its detections mean nothing."""
    import tomllib

    import torch

    from biomae.train.finetune import build_model as build
    from biomae.train.finetune import config_from_dict, save_finetuned

    raw = tomllib.loads((REPO / "src" / "biomae" / "configs" / "starter_finetune.toml").read_text())
    raw["data"]["data_dir"] = raw["train"]["out_dir"] = str(out)
    raw["finetune"]["init"] = "none"
    config = config_from_dict(raw)
    torch.manual_seed(0)
    path = out / "untrained_starter_architecture.safetensors"
    save_finetuned(build(config), config, path, extra={})
    return path


TIMED_MAIN = """
import sys, time
import numpy, pandas, soundfile, soxr, torch  # the libraries annotate imports lazily
import biomae.annotate, biomae.infer, biomae.detectors.energy, biomae.detectors.model
from biomae.cli import main
started = time.perf_counter()
code = main(sys.argv[1:])
print(f"wall_s={time.perf_counter() - started:.3f}")
sys.exit(code)
"""


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(whole command, annotation alone) wall seconds of ``biomae annotate`` arguments ``cmd``."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "biomae", *cmd], check=True, env=env, stdout=subprocess.DEVNULL
    )
    whole_s = time.perf_counter() - started
    out = subprocess.run(
        [sys.executable, "-c", TIMED_MAIN, *cmd],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    return whole_s, float(re.search(r"wall_s=([0-9.]+)", out.stdout).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--model", type=Path, default=None)
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
        "annotate",
        str(wav),
        "--quiet",
        "--overwrite",
        "--format",
        "csv",
    ]
    results = {}
    energy = ["--detector", "energy", "--out", str(work / "energy")]
    whole_s, alone_s = timed(biomae + energy, env)
    results["biomae energy detector (whole command)"] = whole_s
    results["biomae energy detector (annotation alone)"] = alone_s
    from biomae.starter import default_model

    model, label = args.model or default_model(), "biomae model"
    if model is None:
        model, label = build_model(work), "biomae model (starter architecture, untrained)"
    label += f" [{Path(model).name}]"
    whole_s, alone_s = timed(biomae + ["--out", str(work / "model"), "--model", str(model)], env)
    results[f"{label} (whole command)"] = whole_s
    results[f"{label} (annotation alone)"] = alone_s
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
        print(f"{name:62s} {wall_s:7.1f} s  {duration_s / wall_s:7.1f}x real time")
    birdnet = [v for k, v in results.items() if k.startswith("BirdNET")]
    if birdnet:
        for name, wall_s in results.items():
            if name.startswith("biomae"):
                print(f"{name}: {birdnet[0] / wall_s:.2f}x BirdNET's throughput")


if __name__ == "__main__":
    main()
