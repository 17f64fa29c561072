"""Self-supervised MAE pretraining from a TOML config.

    biomae pretrain --config tiny --out runs/x optim.lr=3e-4

--out DIR is the run folder (the same as the override train.out_dir=DIR). A rerun with the
same folder resumes from its checkpoint.pt and says so ("resuming from step N"); --no-resume
refuses instead. Resuming needs the same model, front end, data.batch_size, data.window_s and
train.seed (a change is an error naming each field, old -> new); a run that already reached
optim.max_steps is reported as complete (raise optim.max_steps to train on). Under torchrun every
process runs this same command (see biomae.distributed).
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
        "--config",
        required=True,
        metavar="TOML|PRESET",
        help="a TOML file, or a shipped preset: tiny, small, base, vit1b, starter",
    )
    parser.add_argument(
        "--out", default=None, metavar="DIR", help="run folder (train.out_dir in the config)"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.lr=3e-4"
    )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="fail instead of resuming when the run folder already holds a checkpoint",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    # torch: imported when used, so that `biomae --help` stays without it
    from biomae import distributed
    from biomae.train.common import CheckpointError
    from biomae.train.config_values import toml_string
    from biomae.train.pretrain import CHECKPOINT_NAME, ENCODER_NAME, pretrain
    from biomae.train.pretrain_config import ConfigError, load_config

    overrides = list(args.overrides)
    if args.out is not None:
        overrides.append(f"train.out_dir={toml_string(args.out)}")
    try:
        config = load_config(args.config, overrides)
    except ConfigError as err:
        print(f"biomae pretrain: {err}", file=sys.stderr)
        return 2
    out_dir = Path(config.train.out_dir)
    ckpt = out_dir / CHECKPOINT_NAME
    if args.no_resume and ckpt.exists():
        print(
            f"biomae pretrain: {ckpt} exists and --no-resume was given; choose another run "
            "folder with --out DIR",
            file=sys.stderr,
        )
        return 2
    try:
        summary = pretrain(config, resume=True, progress=not args.no_progress)
    except (ConfigError, CheckpointError, FileNotFoundError) as err:
        print(f"biomae pretrain: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.destroy()
    if summary["rank"] != 0:
        return 0
    ev, step = summary["eval"], summary["step"]
    if summary["losses"]:
        print(
            f"step {step}: eval loss {ev.get('eval_loss')} "
            f"(baselines: zero {ev.get('baseline_zero')}, mean spectrogram "
            f"{ev.get('baseline_mean_spec')}); {summary['bad_steps']} skipped steps"
        )
    else:
        last = f"; last eval loss {ev['eval_loss']} at step {ev['step']}" if ev else ""
        print(
            f"{out_dir}: already complete at step {step} (optim.max_steps="
            f"{config.optim.max_steps}){last}; nothing trained: raise optim.max_steps to train "
            "on, or start a new run with --out DIR"
        )
    print(f"wrote {ckpt} and {out_dir / ENCODER_NAME}")
    return 0
