"""``biomae evaluate --embeddings TARGET``: the embedding probes of
:mod:`biomae.evaluate.embedding_suite` on a folder of labelled clips (``DIR/<label>/*.wav``), the
shared data's clip sets (``shared``) or the embedding model's held-out sets (``heldout``), with
the baselines in the same run, written as CSV, JSON and a Markdown table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from biomae.evaluate.benchmarks import DEFAULT_DATA_ROOT
from biomae.evaluate.embedding_suite import (
    clip_sets,
    folder_set,
    heldout_sets,
    probe_sets,
    resolve_model,
    summary_table,
    usable,
)


def resolve_sets(target: str, data_root=None, sources_root=None):
    """``(sets, notes)`` of ``--embeddings TARGET``: ``shared``, ``heldout`` or a folder."""
    data_root = Path(data_root or DEFAULT_DATA_ROOT)
    if target in ("shared", "heldout"):
        if not (data_root / "index" / "clips.csv").is_file():
            raise FileNotFoundError(
                f"--embeddings {target}: shared data folder {data_root} (index/clips.csv) not "
                "found; give --data-root"
            )
        if target == "shared":
            return clip_sets(data_root)
        if sources_root is None:
            raise ValueError("--embeddings heldout needs --sources-root (the public sources)")
        return heldout_sets(data_root, Path(sources_root))
    table, notes = usable(folder_set(target), Path(target).name)
    if table is None:
        raise ValueError(f"--embeddings {target}: {notes[0]}; need 2 labels of 2 clips each")
    return {Path(target).name: table}, notes


def run_probe(
    target: str,
    out_dir: str | Path,
    *,
    models: tuple[str, ...] = ("embedding", "detector"),
    data_root=None,
    sources_root=None,
    birdnet: bool = True,
) -> dict:
    """Score ``logmel``, ``models`` and BirdNET on the sets of ``target`` (:func:`resolve_sets`);
    write ``embeddings.csv`` (one row per set and embedding), ``embeddings.json`` (rows, the
    summary and notes) and ``embeddings.md`` (the summary as a table) under ``out_dir``.

    A named model (``embedding``) that is not installed is left out with a note; a path that does
    not exist raises ``FileNotFoundError``."""
    import json

    from biomae.atomic_io import atomic_write_text
    from biomae.evaluate.report import json_safe

    sets, notes = resolve_sets(target, data_root, sources_root)
    present = []
    for name in models:
        try:
            resolve_model(name)
            present.append(name)
        except FileNotFoundError as err:
            if name != "embedding":
                raise
            notes.append(f"embedding: left out ({err})")
    rows, more = probe_sets(sets, present, birdnet=birdnet)
    notes += more
    summary = summary_table(rows)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "embeddings.csv", pd.DataFrame(rows).to_csv(index=False))
    report = {
        "target": str(target),
        "protocol": "leave-one-out 1-NN (cosine) and stratified k-fold linear probe per set",
        "rows": rows,
        "summary": summary.reset_index().to_dict(orient="records"),
        "notes": notes,
    }
    atomic_write_text(out_dir / "embeddings.json", json.dumps(json_safe(report), indent=1))
    atomic_write_text(out_dir / "embeddings.md", markdown(summary, notes))
    return report


def markdown(summary: pd.DataFrame, notes: list[str]) -> str:
    """The summary as a Markdown table (accuracies to 3 decimals), then the notes."""
    columns = ["embedding", *summary.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, row in summary.iterrows():
        lines.append("| " + " | ".join([str(name), *(f"{v:.3f}" for v in row)]) + " |")
    return "\n".join(lines + [""] + [f"- {note}" for note in notes]) + "\n"
