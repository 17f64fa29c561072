"""Pretraining loop throughput on this machine: where a step's time goes, windows/s, GFLOP/s.

    python bench/bench_pretrain.py [--preset tiny] [--batch-size 16] [--window-s 2.56] [--bf16]

Times, per micro-batch: reading + resampling windows (``biomae.train.data``), the log-mel front end,
forward, backward and the AdamW step, after warm-up steps. Audio comes from ``../shared/data`` when
present, else the bundled example. Achieved GFLOP/s uses the analytic matmul FLOPs of
``biomae.models.presets.flops_per_second_of_audio`` (training step = 3 x forward: visible-token
encoder + full decoder). Numbers depend on the load of the machine: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from biomae.devices import autocast
from biomae.features import FrontEnd
from biomae.models.mae import MAE
from biomae.models.presets import count_params, flops_per_second_of_audio, get_preset
from biomae.train import common, data
from biomae.train.pretrain import mask_generator
from biomae.train.pretrain_config import PretrainConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "audio"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--window-s", type=float, default=2.56)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (fast only with AMX)")
    args = parser.parse_args()

    pattern = (
        str(SHARED / "**" / "*.flac") if SHARED.exists() else str(REPO / "src/biomae/data/*.flac")
    )
    config = PretrainConfig()
    config.model.preset = args.preset
    config.data.window_s = args.window_s
    recordings = data.find_recordings([pattern])
    stream = data.RandomWindows(
        recordings,
        config.window_samples,
        config.front_end.sample_rate,
        args.batch_size,
        seed=0,
        n_fft_choices=[1024, 2048],
    )
    torch.manual_seed(0)
    mae_config = get_preset(args.preset)
    model = MAE(mae_config)
    front = FrontEnd(config.front_end, mae_config.encoder.patch_t, torch.device("cpu"))
    optimizer = common.build_optimizer(model, 1e-4, (0.9, 0.95), 0.05)
    times = {"data": 0.0, "front_end": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            times = dict.fromkeys(times, 0.0)
        t0 = time.perf_counter()
        batch = stream.batch(step)
        t1 = time.perf_counter()
        spec = front(batch["audio"], batch["n_fft"])
        t2 = time.perf_counter()
        with autocast(torch.device("cpu"), args.bf16):
            loss = model(spec, mask_generator=mask_generator(0, step))["loss"]
        t3 = time.perf_counter()
        loss.backward()
        t4 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t5 = time.perf_counter()
        for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            times[key] += value
    step_s = sum(times.values()) / args.steps
    flops = flops_per_second_of_audio(mae_config, clip_s=args.window_s)
    train_flops = (
        3 * (flops["encoder_visible"] + flops["decoder"]) * args.window_s * args.batch_size
    )
    print(
        f"preset {args.preset}: encoder {count_params(model.encoder) / 1e6:.1f}M params, "
        f"batch {args.batch_size} x {args.window_s} s, {spec.shape[-1]} frames, "
        f"{'bf16' if args.bf16 else 'fp32'}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for key, value in times.items():
        print(f"  {key:<10} {1000 * value / args.steps:9.1f} ms/step")
    print(
        f"  step       {1000 * step_s:9.1f} ms -> {args.batch_size / step_s:.2f} windows/s, "
        f"{args.batch_size * args.window_s / step_s:.1f} s of audio/s"
    )
    compute_s = (times["forward"] + times["backward"]) / args.steps
    print(
        f"  model      {train_flops / 1e9:.1f} GFLOP/step -> {train_flops / compute_s / 1e9:.1f} "
        "GFLOP/s achieved (forward + backward)"
    )


if __name__ == "__main__":
    main()
