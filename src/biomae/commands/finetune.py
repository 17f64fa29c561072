"""Train a detection / classification / embedding head on labelled audio.

    biomae finetune --init runs/pretrain/encoder.safetensors --task detect \\
        --config detect --data DIR --out runs/ft optim.lr=3e-4

--data DIR holds audio files, each with its Raven selection table beside it
(<stem>.selections.txt); --catalog DIR uses the fully annotated recordings of a catalog
(data.datasets picks datasets). --init takes any biomae model file: an exported encoder, a
fine-tuned model (its encoder, and its head too when --task and the head match), or "starter"
(the shipped starter detector); --init none starts from a random model.preset. A frozen-encoder
probe: finetune.freeze_encoder=true. A rerun with the same --out folder resumes from its
checkpoint.pt and says so ("resuming from step N"); resuming needs the same model, front end, head
and finetune sections (a change is an error naming each field, old -> new). The best model (by
validation score) is <out>/best.safetensors.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune an encoder with a detection / classification / embedding head",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="TOML|PRESET",
        help="a TOML file, or a shipped preset: detect, classify, embed, starter",
    )
    parser.add_argument(
        "--init",
        default=None,
        metavar="PATH|starter|none",
        help="model file to start from: an encoder, a fine-tuned model, starter, or none",
    )
    parser.add_argument(
        "--task",
        default=None,
        metavar="TASK",
        help="the head to train: detect, classify, embed, or a task registered in "
        "biomae.train.tasks.TASKS (head.task; default: the config's, else detect)",
    )
    parser.add_argument("--data", default=None, metavar="DIR", help="audio + Raven tables")
    parser.add_argument("--catalog", default=None, metavar="DIR", help="a biomae data catalog")
    parser.add_argument("--out", default=None, metavar="DIR", help="run folder (train.out_dir)")
    parser.add_argument(
        "--no-resume", action="store_true", help="fail when the run folder holds a checkpoint"
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no per-step loss lines (resuming, validation and the summary are still printed)",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.lr=3e-4"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    # torch: imported when used, so that `biomae --help` stays without it
    from biomae.train.common import CheckpointError
    from biomae.train.config_values import toml_string
    from biomae.train.finetune import CHECKPOINT_NAME, finetune, load_config
    from biomae.train.pretrain_config import ConfigError

    overrides = list(args.overrides)
    for flag, key in (
        (args.init, "finetune.init"),
        (args.task, "head.task"),
        (args.data, "data.data_dir"),
        (args.catalog, "data.catalog"),
        (args.out, "train.out_dir"),
    ):
        if flag is not None:
            overrides.append(f"{key}={toml_string(flag)}")
    try:
        config = load_config(args.config, overrides)
    except ConfigError as err:
        print(f"biomae finetune: {err}", file=sys.stderr)
        return 2
    ckpt = Path(config.train.out_dir) / CHECKPOINT_NAME
    if args.no_resume and ckpt.exists():
        print(
            f"biomae finetune: {ckpt} exists and --no-resume was given; choose another run "
            "folder with --out DIR",
            file=sys.stderr,
        )
        return 2
    try:
        summary = finetune(config, progress=not args.no_progress)
    except (ConfigError, CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"biomae finetune: {err}", file=sys.stderr)
        return 2
    print(
        f"step {summary['step']}: best validation score {summary['best_score']:.4f}; "
        f"model in {summary['best_path']}"
    )
    return 0
