"""The leave-taxa-out suite: how a detector does on taxa and sources held out of all training.

    biomae evaluate --model auto --suite leave-taxa-out --out eval/lto

:data:`HELD_OUT` names the held-out groups: whole sources (and taxa) that no pretraining,
fine-tuning, synthesis or threshold calibration may use. Training scripts import
:func:`is_held_out` to leave them out. Each group is scored on its own (``scope`` = the group):

- **full** groups (every call annotated): class-agnostic event F1 at IoU >= 0.3, as every suite
  (:func:`biomae.evaluate.benchmarks.score_detection`);
- **partial** groups (field recordings where only some calls are boxed, so unboxed calls count
  as false positives): recall and detections per minute only — precision and F1 are left empty.
  Also ``recall_at_energy_rate``: the recall of the detector's highest-scored events, as many as
  the energy detector reports on the same recordings (equal detections per minute), beside
  ``energy_recall``, the energy detector's own. A detector with fewer events keeps them all.

All groups are read in place from the shared data folder (``data_root``); they are research-use
recordings, evaluation only. ``macro`` is the mean event F1 over the full groups and the mean
recall over the partial ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biomae.evaluate.benchmarks import (
    DEFAULT_DATA_ROOT,
    Skipped,
    _detection_summary,
    load_detector,
    score_detection,
)


@dataclass(frozen=True)
class HeldOutGroup:
    """A held-out group of recordings of the shared data folder.

    Attributes:
        name: the group (its ``scope`` in the summary).
        taxon_group: the kind of animal, for the table.
        source: the shared data source (``index/files.csv`` ``source``).
        path_prefix: only files whose path starts with this ("" = all of the source's).
        annotation: "full" or "partial" (see the module docstring).
    """

    name: str
    taxon_group: str
    source: str
    path_prefix: str
    annotation: str


HELD_OUT: tuple[HeldOutGroup, ...] = (
    HeldOutGroup(
        "zebra finch (other lab)",
        "songbirds",
        "whisperseg",
        "audio/whisperseg/data/example_subset/Zebra_finch/",
        "full",
    ),
    HeldOutGroup("field frogs, 17 species", "frogs", "frog_degradation_ots2021", "", "partial"),
    HeldOutGroup("bellbird and neighbours", "field birds", "bellbird_mimicry", "", "partial"),
)


def is_held_out(source: str, path: str = "") -> bool:
    """Whether a recording of the shared data folder (its ``source`` and its path relative to the
    folder, as in ``index/files.csv``) belongs to a held-out group: training must not use it."""
    return any(g.source == source and str(path).startswith(g.path_prefix) for g in HELD_OUT)


def held_out_recordings(data_root: str | Path = DEFAULT_DATA_ROOT):
    """``(recordings, events)``: the held-out groups' recordings (``path``, ``source`` = the group
    name, ``annotation``, ``duration_s``) and their reference events."""
    from biomae import audio as audio_io
    from biomae.datasets.registry import get_adapter

    data_root = Path(data_root)
    if not (data_root / "index" / "files.csv").is_file():
        raise Skipped(f"shared data folder {data_root} (index/files.csv) not found")
    recordings, events = get_adapter("shared").load(data_root)
    chosen = []
    for group in HELD_OUT:
        prefix = str(data_root / group.path_prefix)
        rows = recordings[
            recordings["source"].eq(group.source)
            & recordings["annotation"].eq(group.annotation)
            & recordings["path"].str.startswith(prefix)
        ]
        if not len(rows):
            raise Skipped(f"held-out group {group.name!r}: no recordings of {group.source}")
        chosen.append(rows.assign(source=group.name, group_annotation=group.annotation))
    table = pd.concat(chosen, ignore_index=True).sort_values("path").reset_index(drop=True)
    table["duration_s"] = [audio_io.info(p).duration_s for p in table["path"]]
    table["regions"] = [[] for _ in range(len(table))]  # whole files
    return table, events[events["recording"].isin(table["path"])].reset_index(drop=True)


def recall_at_count(pred: pd.DataFrame, ref: pd.DataFrame, n_events: int, iou: float) -> float:
    """Recall (IoU >= ``iou``, one-to-one) of the ``n_events`` highest-scored predictions."""
    from biomae.metrics.events import MatchConfig, event_f1

    if not len(ref):
        return float("nan")
    if "score" in pred and len(pred) > n_events:
        order = np.argsort(-pred["score"].fillna(0).to_numpy(), kind="stable")
        pred = pred.iloc[order[:n_events]].reset_index(drop=True)
    config = MatchConfig(iou_threshold=iou, match_labels=False)
    return float(event_f1(pred, ref, config).overall.recall)


def run_leave_taxa_out(
    model,
    out_dir: Path,
    *,
    data_root=DEFAULT_DATA_ROOT,
    iou=0.3,
    birdnet_threshold=0.1,
) -> dict:
    """The ``leave-taxa-out`` suite (module docstring)."""
    detector = load_detector(model, birdnet_threshold=birdnet_threshold)
    recordings, events = held_out_recordings(data_root)
    rows, predictions = score_detection(detector, recordings, events, out_dir, iou=iou)
    rows = [r for r in rows if r["scope"] != "all"]  # groups differ in kind: a macro row below
    energy = load_detector("energy")
    groups = {g.name: g for g in HELD_OUT}
    for row in rows:
        group = groups[row["scope"]]
        members = recordings[recordings["source"] == group.name]
        minutes = float(members["duration_s"].sum()) / 60
        paths = set(members["path"])
        pred = predictions[predictions["recording"].isin(paths)]
        row.update(
            taxon_group=group.taxon_group,
            annotation=group.annotation,
            per_min=len(pred) / minutes,
        )
        if group.annotation == "partial":
            ref = events[events["recording"].isin(paths)]
            theirs = pd.concat(
                [energy.detect_file(p, recording=p) for p in sorted(paths)], ignore_index=True
            )
            row.update(
                event_f1=None,
                precision=None,
                recall_at_energy_rate=recall_at_count(pred, ref, len(theirs), iou),
                energy_recall=recall_at_count(theirs, ref, len(theirs), iou),
                energy_per_min=len(theirs) / minutes,
            )
    full = [r["event_f1"] for r in rows if r["annotation"] == "full"]
    partial = [r["recall"] for r in rows if r["annotation"] == "partial"]
    rows.append(
        {
            "scope": "macro",
            "n_recordings": int(sum(r["n_recordings"] for r in rows)),
            "event_f1": float(np.mean(full)) if full else None,
            "recall": float(np.mean(partial)) if partial else None,
        }
    )
    notes = [
        "full groups: event F1 at IoU >= 0.3; partial groups (some calls boxed): recall, "
        "detections per minute, and recall at the energy detector's number of detections",
        "held out of all training: biomae.evaluate.leave_taxa_out.HELD_OUT (is_held_out)",
    ]
    listed = recordings[["path", "source", "duration_s"]].to_dict("records")
    return _detection_summary("leave-taxa-out", model, rows, listed, notes)
