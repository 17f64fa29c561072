"""Export a trained embedding run as the shipped model: ``src/biomae/data/embedding.safetensors``.

    PYTHONPATH=src python scripts/embedding_export.py runs/embed_starter \
        --sources-root /work/data_sources --data-root ../shared/data

Writes the run's ``embedding.safetensors`` (encoder + projection head, ``task="embed"``) with its
weights in float16 (half the size; :func:`biomae.models.files.load_encoder` loads them into the
float32 encoder), its spec, and provenance in the metadata: the recipe's arguments and step
count, and ``training``: one row per training file (source, label, licence) as
:func:`biomae.evaluate.embedding_split.training_clips` lists it — checked again here against the
held-out sets (``tests/test_embedding_model.py`` checks the shipped file the same way).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file

from biomae.embed import DEFAULT_EMBEDDING_MODEL
from biomae.evaluate.embedding_split import HELDOUT_SETS, check_disjoint, training_clips
from biomae.models.files import read_spec, save_model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a scripts/embedding_train.py output folder")
    p.add_argument("--sources-root", type=Path, required=True)
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--out", type=Path, default=DEFAULT_EMBEDDING_MODEL)
    args = p.parse_args(argv)
    source = args.run / "embedding.safetensors"
    with safe_open(str(source), framework="pt") as handle:
        metadata = handle.metadata()
    summary = json.loads((args.run / "summary.json").read_text())
    table = training_clips(args.sources_root, args.data_root)
    check_disjoint(table)
    training = [
        {"source": row.source, "label": row.label, "license": row.license}
        for row in table.drop_duplicates(["source", "label"]).itertuples()
    ]
    tensors = {k: v.half() for k, v in load_file(str(source)).items()}
    extra = {
        "recipe": "scripts/embedding_train.py",
        "args": json.loads(metadata["args"]),
        "step": json.loads(metadata["step"]),
        "stopped_by": summary["stopped_by"],
        "training_hours": summary["hours"],
        "training": training,
        "heldout_sets": sorted(HELDOUT_SETS),
    }
    save_model(args.out, read_spec(source), tensors, extra=extra)
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB, step {extra['step']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
