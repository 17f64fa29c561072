"""Benchmark: validation event F1 of a fine-tuned detector at decoding thresholds beyond the
calibration grid (``biomae.train.tasks.CALIBRATION_THRESHOLDS``), on the validation split of
the fine-tuning run that made it (the same ``split_labeled`` split; never its test data).

Prints one line per threshold: ``threshold_on`` (``threshold_off`` keeps its ratio) and the event
F1 at IoU >= 0.3 on the validation recordings. For the shipped starter model, the run is the one
``make starter-model`` leaves in ``models/starter/work/finetune``.

    python bench/bench_thresholds.py [--model src/biomae/data/starter.safetensors]
        [--run-config models/starter/work/finetune/config.json] [--thresholds 0.8,0.9,0.95]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from biomae.features import FrontEnd
from biomae.train import finetune
from biomae.train.tasks import DetectTask

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "src/biomae/data/starter.safetensors")
    parser.add_argument(
        "--run-config", type=Path, default=ROOT / "models/starter/work/finetune/config.json",
        help="config.json of the fine-tuning run (its data section gives the validation split)",
    )  # fmt: skip
    parser.add_argument("--thresholds", default="0.8,0.85,0.9,0.93,0.95,0.97,0.98")
    args = parser.parse_args()
    if not args.run_config.exists():
        print(
            f"bench_thresholds: {args.run_config} not found (run make starter-model)",
            file=sys.stderr,
        )
        return 2
    model, config = finetune.load_finetuned(args.model)
    data = json.loads(args.run_config.read_text())["data"]
    items = finetune.find_labeled(data["data_dir"])
    _, val_items = finetune.split_labeled(items, data["val_fraction"], data["split_by"])
    device = torch.device("cpu")
    front_end = FrontEnd(config.front_end, model.encoder.config.patch_t, device)
    print(f"{args.model.name}: {len(val_items)} validation recordings of {data['data_dir']}")
    for threshold in (float(t) for t in args.thresholds.split(",")):
        task = DetectTask(thresholds=(threshold,))  # validation scores exactly this one
        with torch.no_grad():
            score, decode = task.score(model, front_end, val_items, None, config, device)
        print(f"threshold_on {decode.threshold_on:.2f} (off {decode.threshold_off:.3f}): "
              f"validation event F1 {score:.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
