"""Your own species: fine-tune the shipped starter detector on 8 annotated recordings of a finch
from another lab and score it on 3 more (issue 16, item 8).

    PYTHONPATH=src python bench/bench_own_species.py --out runs/own_species [--seed 1]
        [--set optim.lr=1e-4 --set finetune.freeze_encoder=true ...]

The recordings are the adult zebra finches of the shared data's ``whisperseg`` examples (a lab
other than the Bengalese-finch ones the starter model was trained on; research use: read in
place, tables and links written under ``--out``, nothing copied). :func:`choose` splits them by a
hash of ``(seed, path)``: 3 test recordings, 8 training ones. The recipe is what the README tells
a user::

    biomae finetune --init starter --config own_species --data DIR --out RUN

(``biomae/configs/finetune_own_species.toml``: the starter model's own front end, encoder and
head, batch 4, learning rate 2e-4, 200 steps, at most 10 minutes, the starter's decode threshold
kept); ``--set KEY=VALUE`` adds overrides (``--set finetune.calibrate_threshold=true``). Printed:
event F1 at IoU >= 0.3 on the 3 test recordings of the shipped model (ungated and with the
``auto`` default's gate) and of the fine-tuned one, the training time and the settings.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import starter_recipe as recipe  # noqa: E402

DATA = Path(os.environ.get("BIOMAE_SHARED_DATA", REPO.parent / "shared" / "data"))
ADULTS = "audio/whisperseg/data/example_subset/Zebra_finch/test_adults/"
N_TRAIN, N_TEST = 8, 3


def choose(data_root: Path, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, test)`` rows of ``index/files.csv``: the adult zebra finch recordings ordered by
    a hash of ``(seed, file)``, the first 3 for testing and the next 8 for training."""
    files = pd.read_csv(data_root / "index" / "files.csv", keep_default_na=False)
    adults = files[files["file"].str.startswith(ADULTS)].copy()
    if len(adults) < N_TRAIN + N_TEST:
        raise SystemExit(f"{data_root}: {len(adults)} adult zebra finch recordings, need 11")
    digest = adults["file"].map(lambda f: hashlib.sha1(f"{seed}:{f}".encode()).hexdigest())
    adults = adults.assign(_order=digest).sort_values("_order").drop(columns="_order")
    return adults.iloc[N_TEST : N_TEST + N_TRAIN], adults.iloc[:N_TEST]


def f1(detector, chosen: pd.DataFrame, data_root: Path) -> dict:
    """Event F1 / precision / recall at IoU >= 0.3 of ``detector`` on ``chosen``."""
    from biomae.annotations.schema import concat_events
    from biomae.metrics.events import MatchConfig, event_f1

    ref = recipe.index_events(data_root, chosen)
    pred = concat_events(detector.detect_file(data_root / f, recording=f) for f in chosen["file"])
    overall = event_f1(pred, ref, MatchConfig(iou_threshold=0.3, match_labels=False)).overall
    return {"f1": overall.f1, "precision": overall.precision, "recall": overall.recall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--config", default="own_species", help="finetune config or preset")
    parser.add_argument("--seed", type=int, default=0, help="which recordings train and test")
    parser.add_argument("--set", action="append", default=[], help="a finetune override")
    args = parser.parse_args(argv)
    import torch

    from biomae.cli import main as biomae
    from biomae.detectors.gate import GatedDetector
    from biomae.detectors.model import InferConfig, ModelDetector

    train, test = choose(args.data, args.seed)
    data_dir = args.out / "data"
    n_events = recipe.write_tables(
        args.data, train, recipe.index_events(args.data, train), data_dir
    )
    print(f"train: {len(train)} recordings, {n_events} syllables; test: {len(test)} recordings")
    rows = {}
    starter = ModelDetector("starter", InferConfig(boxes=False, device="cpu"))
    rows["shipped starter"] = f1(starter, test, args.data)
    rows["shipped starter + gate (auto)"] = f1(GatedDetector(starter), test, args.data)
    run = args.out / "run"
    overrides = list(args.set)
    started = time.perf_counter()
    argv = ["finetune", "--init", "starter", "--config", args.config, "--data", str(data_dir)]
    status = biomae([*argv, "--out", str(run), "--no-progress", *overrides])
    train_s = time.perf_counter() - started
    if status != 0:
        print(f"finetune failed with exit status {status}", file=sys.stderr)
        return status
    tuned = ModelDetector(run / "best.safetensors", InferConfig(boxes=False, device="cpu"))
    rows["fine-tuned from starter"] = f1(tuned, test, args.data)
    rows["fine-tuned + gate"] = f1(GatedDetector(tuned), test, args.data)
    table = pd.DataFrame(rows).T
    print(
        f"fine-tuning: {train_s / 60:.1f} min wall, {torch.get_num_threads()} torch threads, "
        f"{os.cpu_count()} cores (shared), config {args.config}, overrides {overrides}; threshold "
        f"{tuned.decode_config.threshold_on:.2f}"
    )
    print(table.to_string(float_format="{:.3f}".format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
