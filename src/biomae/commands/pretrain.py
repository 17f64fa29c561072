"""``biomae pretrain``: self-supervised MAE pretraining from a TOML config.

    biomae pretrain --config configs/pretrain_tiny.toml optim.lr=3e-4 train.out_dir=runs/x

Resumes from ``<train.out_dir>/checkpoint.pt`` when it exists (``--no-resume`` to refuse). Under
``torchrun`` every process runs this same command (see ``biomae.distributed``).
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain a masked autoencoder on unlabelled recordings",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", required=True, help="TOML file, e.g. configs/pretrain_tiny.toml"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.lr=3e-4"
    )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="fail instead of resuming when the output folder already holds a checkpoint",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from biomae import distributed
    from biomae.train.config import ConfigError, load_config
    from biomae.train.pretrain import CHECKPOINT_NAME, ENCODER_NAME, pretrain

    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"biomae pretrain: {err}", file=sys.stderr)
        return 2
    ckpt = Path(config.train.out_dir) / CHECKPOINT_NAME
    if args.no_resume and ckpt.exists():
        print(
            f"biomae pretrain: {ckpt} exists and --no-resume was given; choose another "
            "train.out_dir",
            file=sys.stderr,
        )
        return 2
    try:
        summary = pretrain(config, resume=True, progress=not args.no_progress)
    finally:
        distributed.destroy()
    if summary["rank"] == 0:
        ev = summary["eval"]
        print(
            f"step {summary['step']}: eval loss {ev.get('eval_loss')} "
            f"(baselines: zero {ev.get('baseline_zero')}, mean spectrogram "
            f"{ev.get('baseline_mean_spec')}); {summary['bad_steps']} skipped steps"
        )
        print(f"wrote {ckpt} and {Path(config.train.out_dir) / ENCODER_NAME}")
    return 0
