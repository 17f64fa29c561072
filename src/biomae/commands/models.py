"""``biomae models``: list the MAE presets with parameter counts and FLOPs per second of audio."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "models",
        help="list model presets: parameters and forward GFLOP per second of audio",
        description="Every MAE preset, built on the meta device (no memory), with encoder and "
        "decoder parameter counts and analytic forward matmul GFLOP per second of audio "
        "(10 ms hop; attention over clips of --clip-s seconds). A training step costs ~3x the "
        "pretraining figures (encoder on visible patches + decoder).",
    )
    p.add_argument(
        "--clip-s", type=float, default=10.0, help="clip length for the attention term (default 10)"
    )
    p.set_defaults(run=run)


def preset_table(clip_s: float = 10.0) -> list[dict]:
    """One row per preset: name, widths, parameter counts and GFLOP per second of audio."""
    import torch

    # torch: imported when used, so that `biomae --help` stays without it
    from biomae.models.mae import MAE
    from biomae.models.presets import PRESETS, count_params, flops_per_second_of_audio

    rows = []
    for name, config in PRESETS.items():
        with torch.device("meta"):
            model = MAE(config)
        n_encoder = count_params(model.encoder)
        flops = flops_per_second_of_audio(config, clip_s=clip_s)
        enc = config.encoder
        rows.append(
            {
                "preset": name,
                "encoder": f"{enc.dim}/{enc.depth}/{enc.heads}",
                "decoder": f"{config.decoder_dim}/{config.decoder_depth}/{config.decoder_heads}",
                "encoder_params": n_encoder,
                "decoder_params": count_params(model) - n_encoder,
                "encoder_gflop_per_s": flops["encoder"] / 1e9,
                "pretrain_gflop_per_s": (flops["encoder_visible"] + flops["decoder"]) / 1e9,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    if args.clip_s <= 0:
        print(f"biomae models: --clip-s {args.clip_s:g} must be > 0 seconds", file=sys.stderr)
        return 2
    header = (
        f"{'preset':<7} {'encoder':>10} {'decoder':>10} {'enc params':>11} {'dec params':>11} "
        f"{'enc GFLOP/s':>12} {'pretrain GFLOP/s':>17}"
    )
    print(header)
    for row in preset_table(args.clip_s):
        print(
            f"{row['preset']:<7} {row['encoder']:>10} {row['decoder']:>10} "
            f"{row['encoder_params'] / 1e6:>10.1f}M {row['decoder_params'] / 1e6:>10.1f}M "
            f"{row['encoder_gflop_per_s']:>12.2f} {row['pretrain_gflop_per_s']:>17.2f}"
        )
    print(
        "dim/depth/heads; GFLOP per second of audio, forward matmuls, "
        f"{args.clip_s:g}-s clips; encoder = all patches (inference), "
        "pretrain = encoder on visible patches + decoder."
    )
    return 0
