"""Does pretraining help? Fine-tune the starter recipe's detector from scratch and compare.

Takes a starter-model run (``scripts/starter_model.py --out DIR`` leaves ``DIR/work``), fine-tunes
the same architecture with the same data, config and steps but a random encoder (``finetune.init =
"none"``), and prints event F1 (IoU >= 0.3) on the held-out recordings for: the detector fine-tuned
from the pretrained encoder, the one trained from scratch, and the energy detector.

    python bench/bench_pretrain_vs_scratch.py runs/starter_reduced [--steps 400]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path, help="a starter run folder (with work/)")
    parser.add_argument("--steps", type=int, default=0, help="fine-tuning steps (0 = as the run)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "scripts"))
    import starter_model
    import starter_recipe

    from biomae.annotations.schema import concat_events
    from biomae.detectors.energy import EnergyDetector
    from biomae.detectors.model import InferConfig, ModelDetector
    from biomae.train.finetune import config_from_dict, finetune

    work = args.run / "work"
    state = json.loads((work / "state.json").read_text())
    steps = args.steps or state["finetune"]["steps"]
    raw = starter_model.read_toml(REPO / "src" / "biomae" / "configs" / "starter_finetune.toml")
    raw["data"]["data_dir"] = str((work / "labelled" / "train").resolve())
    raw["finetune"]["init"] = "none"
    raw["optim"]["max_steps"] = steps
    raw["train"].update(out_dir=str(work / "finetune_scratch"), seed=0, time_budget_s=0)
    finetune(config_from_dict(raw, "src/biomae/configs/starter_finetune.toml"))

    import pandas as pd

    files = pd.read_csv(work / "inventory.csv")
    chosen = files[files["use"] == "test"]
    ref = starter_recipe.index_events(args.data, chosen)
    detectors = {
        "fine-tuned from the pretrained encoder": ModelDetector(
            work / "finetune" / "best.safetensors", InferConfig(device="cpu")
        ),
        "same architecture, trained from scratch": ModelDetector(
            work / "finetune_scratch" / "best.safetensors", InferConfig(device="cpu")
        ),
        "energy detector": EnergyDetector(),
    }
    root = work / "labelled" / "test"
    print(f"held-out: {len(chosen)} recordings, {len(ref)} reference events, {steps} steps each")
    for name, detector in detectors.items():
        pred = concat_events(detector.detect_file(root / f, recording=f) for f in chosen["file"])
        scores = starter_model.event_scores(pred, ref)
        print(f"{name:45s} F1 {scores['f1']:.3f}  P {scores['precision']}  R {scores['recall']}")


if __name__ == "__main__":
    main()
