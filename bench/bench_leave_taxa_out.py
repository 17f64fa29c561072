"""Side by side on taxa held out of all training: the default detector, the starter model alone,
the energy detector and BirdNET V2.4 (``biomae evaluate --suite leave-taxa-out`` for each), plus
the lab-finch test recordings the starter model was held out from (its own species).

    BIOMAE_BIRDNET_PYTHON=/path/to/birdnet-venv/bin/python \\
        PYTHONPATH=src python bench/bench_leave_taxa_out.py --out runs/lto

Per held-out group (:data:`biomae.evaluate.leave_taxa_out.HELD_OUT`): event F1 at IoU >= 0.3
where every call is annotated; recall, detections per minute and recall at the energy detector's
number of detections where only some calls are boxed. BirdNET is skipped with a note when its
virtual environment is absent. The lab-finch row is the starter recipe's held-out split
(``scripts/starter_recipe.py``, seed 0, 15 %): event F1 there must stay >= 0.85.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DETECTORS = ("auto", "starter", "energy", "birdnet")


def suite_rows(model: str, out_dir: Path, data_root: Path) -> list[dict] | str:
    """The suite's summary rows for ``model``, or the reason it was skipped."""
    from biomae.evaluate.benchmarks import Skipped
    from biomae.evaluate.leave_taxa_out import run_leave_taxa_out

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # per-file progress lines
            return run_leave_taxa_out(model, out_dir / model, data_root=data_root)["rows"]
    except Skipped as err:
        return str(err)


def lab_finch_f1(model: str, data_root: Path) -> float:
    """Event F1 of ``model`` on the starter recipe's held-out Bengalese-finch recordings."""
    sys.path.insert(0, str(REPO / "scripts"))
    import starter_recipe as recipe

    from biomae.annotations.schema import concat_events
    from biomae.evaluate.benchmarks import load_detector
    from biomae.metrics.events import MatchConfig, event_f1

    files = recipe.inventory(data_root, 0, 0.15)
    test = files[files["use"] == "test"]
    ref = recipe.index_events(data_root, test)
    detector = load_detector(model)
    pred = concat_events(detector.detect_file(data_root / f, recording=f) for f in test["file"])
    return float(event_f1(pred, ref, MatchConfig(iou_threshold=0.3)).overall.f1)


def main(argv: list[str] | None = None) -> int:
    from biomae.evaluate.benchmarks import DEFAULT_DATA_ROOT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    table, notes = {}, []
    for model in args.detectors.split(","):
        started = time.perf_counter()
        rows = suite_rows(model, args.out, args.data_root)
        if isinstance(rows, str):
            notes.append(f"{model} skipped: {rows}")
            continue
        column = {}
        for row in rows:
            if row["scope"] == "macro":
                column["macro F1 (full) / recall (partial)"] = (
                    f"{row['event_f1']:.3f} / {row['recall']:.3f}"
                )
            elif row["annotation"] == "full":
                column[f"{row['scope']} ({row['taxon_group']}): F1"] = f"{row['event_f1']:.3f}"
            else:
                name = f"{row['scope']} ({row['taxon_group']}, partial)"
                column[f"{name}: recall / per min"] = f"{row['recall']:.3f} / {row['per_min']:.0f}"
                column[f"{name}: recall at energy's rate"] = (
                    f"{row['recall_at_energy_rate']:.3f} (energy {row['energy_recall']:.3f}, "
                    f"{row['energy_per_min']:.0f}/min)"
                )
        if model != "birdnet":
            column["lab finch held-out (trained species): F1"] = (
                f"{lab_finch_f1(model, args.data_root):.3f}"
            )
        table[model] = column
        print(f"{model}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 40)
    print(pd.DataFrame(table).fillna("-").to_string())
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
