"""Embedding figures of the model card (docs/embeddings.md) and the README: leave-one-out 1-NN and
linear-probe accuracy on the held-out sets of :mod:`biomae.evaluate.embedding_split` (species the
shipped embedding model never saw), for the shipped embedding model, the starter detector's
encoder, log-mel statistics and BirdNET V2.4 (when ``bench/peers/setup_birdnet.sh`` has set up
its environment, or ``BIOMAE_BIRDNET_PYTHON`` names it) — all in one run.

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/bench_embeddings.py \
        --data-root ../shared/data --sources-root /work/data_sources --out runs/bench_embeddings

Prints the per-set table (1-NN / probe) and the means, and writes embeddings.csv/.json/.md under
``--out`` (:func:`biomae.evaluate.embedding_probe.run_probe`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from biomae.evaluate.embedding_probe import run_probe


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--sources-root", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("runs/bench_embeddings"))
    p.add_argument("--model", action="append", help="model(s) to score (default: embedding)")
    p.add_argument("--target", default="heldout", help="heldout, shared or a folder DIR/<label>/")
    p.add_argument("--no-birdnet", action="store_true")
    args = p.parse_args(argv)
    started = time.perf_counter()
    report = run_probe(
        args.target,
        args.out,
        models=(*(args.model or ["embedding"]), "detector"),
        data_root=args.data_root,
        sources_root=args.sources_root,
        birdnet=not args.no_birdnet,
    )
    rows = pd.DataFrame(report["rows"])
    cell = rows.assign(
        cell=[
            f"{a:.3f} / {b:.3f}" for a, b in zip(rows.nn_accuracy, rows.probe_accuracy, strict=True)
        ]
    )
    table = cell.pivot(index="embedding", columns="set", values="cell")
    sizes = rows.drop_duplicates("set").set_index("set")
    print("1-NN / linear probe accuracy per held-out set (clips, labels, chance):")
    for name, size in sizes.iterrows():
        print(f"  {name}: {size.n_clips} clips, {size.n_labels} labels, chance {size.chance:.3f}")
    print(table.to_string())
    print()
    print((args.out / "embeddings.md").read_text())
    print(f"wall {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
