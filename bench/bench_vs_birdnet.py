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

Also (issue 17), each as a whole process, side by side in the same run:

4. the same biomae model on ONNX Runtime (``--runtime onnx``; the graph exported beforehand,
   untimed) when onnxruntime is installed;
5. start-up: ``biomae annotate`` on one 10-s file (torch and ONNX), the median of ``--repeats``;
6. many short files: ``--files`` 10-s files (cut from the stitched audio, repeating) in one
   ``biomae annotate`` and in one BirdNET process.

    python bench/bench_vs_birdnet.py [--minutes 10] [--files 1000] [--model best.safetensors]
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


def timed(cmd: list[str], env: dict, alone: bool = True) -> tuple[float, float]:
    """(whole command, annotation alone) wall seconds of ``biomae annotate`` arguments ``cmd``
    (``alone=False``: the whole command only, the second figure NaN)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "biomae", *cmd], check=True, env=env, stdout=subprocess.DEVNULL
    )
    whole_s = time.perf_counter() - started
    if not alone:
        return whole_s, float("nan")
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
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--files", type=int, default=1000, help="10-s files (0: skip)")
    parser.add_argument("--repeats", type=int, default=3, help="start-up runs")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    import bench_annotate
    from bench_annotate import stitch

    bench_annotate.SHARED = Path(os.environ.get("BIOMAE_SHARED_DATA", bench_annotate.SHARED))

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
    torch_cmd = biomae + ["--out", str(work / "model"), "--model", str(model), "--runtime", "torch"]
    whole_s, alone_s = timed(torch_cmd, env)
    results[f"{label} (whole command)"] = whole_s
    results[f"{label} (annotation alone)"] = alone_s
    onnx_env = {**env, "BIOMAE_CACHE": str(work / "cache")}
    if has_onnxruntime():
        subprocess.run(  # export once, untimed: what `biomae export M --onnx` does
            [sys.executable, "-m", "biomae", "export", str(model), "--onnx"],
            check=True, env=onnx_env, capture_output=True,
        )  # fmt: skip
        onnx_cmd = biomae + ["--out", str(work / "onnx"), "--model", str(model)]
        whole_s, alone_s = timed(onnx_cmd + ["--runtime", "onnx"], onnx_env)
        results[f"{label} ONNX Runtime (whole command)"] = whole_s
        results[f"{label} ONNX Runtime (annotation alone)"] = alone_s
    if BIRDNET_PYTHON.exists():
        whole_s, alone_s = birdnet_timed([wav], work / "birdnet.csv", env)
        results["BirdNET V2.4 (TFLite, whole process)"] = whole_s
        results["BirdNET V2.4 (TFLite, prediction only)"] = alone_s
    else:
        print(f"BirdNET not found at {BIRDNET_PYTHON}: run bench/peers/setup_birdnet.sh")
    print(f"audio: {duration_s / 60:.1f} min of real recordings stitched, 32 kHz")
    report(results, duration_s)

    short = work / "short"  # start-up on one 10-s file
    short.mkdir()
    sf.write(short / "one.wav", audio[: 10 * rate], rate)
    starts = {}
    for name, runtime, run_env in (("torch", "torch", env), ("ONNX Runtime", "onnx", onnx_env)):
        if runtime == "onnx" and not has_onnxruntime():
            continue
        out = str(work / f"one_{runtime}")
        cmd = ["annotate", str(short / "one.wav"), "--quiet", "--overwrite", "--format", "csv",
               "--model", str(model), "--runtime", runtime, "--out", out]  # fmt: skip
        walls = [timed(cmd, run_env, alone=False)[0] for _ in range(args.repeats)]
        starts[name] = sorted(walls)[len(walls) // 2]
        print(f"start-up, biomae annotate on one 10-s file ({name}): median {starts[name]:.2f} s "
              f"of {args.repeats} runs ({', '.join(f'{w:.2f}' for w in walls)})")  # fmt: skip
    if args.files:
        many_files(args.files, audio, rate, work, model, env, onnx_env)
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (2 cores)")


def has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def birdnet_timed(files: list[Path], out_csv: Path, env: dict) -> tuple[float, float]:
    """(whole process, prediction only) wall seconds of BirdNET on ``files``."""
    started = time.perf_counter()
    out = subprocess.run(
        [str(BIRDNET_PYTHON), str(REPO / "bench/peers/birdnet_predict.py"), str(out_csv),
         *map(str, files), "--workers", "2"],
        check=True, env=env, capture_output=True, text=True,
    )  # fmt: skip
    whole_s = time.perf_counter() - started
    return whole_s, float(re.search(r"wall_s=([0-9.]+)", out.stdout).group(1))


def report(results: dict[str, float], duration_s: float) -> None:
    for name, wall_s in results.items():
        print(f"{name:72s} {wall_s:7.1f} s  {duration_s / wall_s:7.1f}x real time")
    birdnet = {k: v for k, v in results.items() if k.startswith("BirdNET")}
    for name, wall_s in results.items():
        if name.startswith("biomae"):
            kind = "whole process" if "whole" in name else "prediction only"
            peer = [v for k, v in birdnet.items() if kind in k]
            if peer:
                print(f"{name}: {peer[0] / wall_s:.2f}x BirdNET's throughput ({kind})")


def many_files(n_files: int, audio, rate: int, work: Path, model, env, onnx_env) -> None:
    """``n_files`` 10-s WAV files in one biomae process (torch, ONNX) and one BirdNET process."""
    folder = work / "many"
    folder.mkdir()
    n_clips = max(1, len(audio) // (10 * rate))
    for i in range(n_files):
        k = i % n_clips
        sf.write(folder / f"f{i:05d}.wav", audio[k * 10 * rate : (k + 1) * 10 * rate], rate)
    results = {}
    cmd = ["annotate", str(folder), "--quiet", "--overwrite", "--format", "csv", "--model",
           str(model)]  # fmt: skip
    results["biomae model, torch (whole process)"] = timed(
        cmd + ["--runtime", "torch", "--out", str(work / "many_torch")], env, alone=False
    )[0]
    if has_onnxruntime():
        results["biomae model, ONNX Runtime (whole process)"] = timed(
            cmd + ["--runtime", "onnx", "--out", str(work / "many_onnx")], onnx_env, alone=False
        )[0]
    if BIRDNET_PYTHON.exists():
        files = sorted(folder.glob("*.wav"))
        results["BirdNET V2.4 (TFLite, whole process)"] = birdnet_timed(
            files, work / "many_birdnet.csv", env
        )[0]
    print(f"{n_files} files of 10 s ({n_files * 10 / 60:.0f} min of audio), one process each:")
    report(results, n_files * 10.0)


if __name__ == "__main__":
    main()
