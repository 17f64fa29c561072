"""Score a prediction table against a reference table and write the results a user reads.

:func:`score_tables` runs every metric of :mod:`biomae.metrics.events` (event F1 at the IoU
threshold, onset/offset-tolerance F1, frame F1) and, when every prediction has a score, the
precision-recall curves and AP of :mod:`biomae.metrics.precision_recall`. :func:`write_report`
writes into a folder, each file atomically:

- ``metrics.csv``: one row per metric and scope: ``metric`` (event_iou, onset_offset, frame, ap),
  ``scope`` (overall = micro, macro, class), ``label``, tp, fp, fn, precision, recall, f1, ap.
- ``per_recording.csv``: event-IoU counts per recording.
- ``metrics.json``: the same numbers, the configuration, the inputs and the pairing.
- ``pr_curve.csv`` and ``pr_curve.png``: the pooled curve and, with label matching, one per class
  (only when predictions are scored).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biomae.atomic_io import atomic_open, atomic_path, atomic_write_text
from biomae.metrics.events import (
    MatchConfig,
    Regions,
    Scores,
    event_f1,
    frame_f1,
    in_regions,
    onset_offset_f1,
)
from biomae.metrics.precision_recall import APResult, precision_recall


@dataclass
class Report:
    """Everything :func:`score_tables` computed.

    Attributes:
        scores: metric name -> :class:`Scores` (event_iou, onset_offset, frame).
        ap: the precision-recall result, or None when some prediction has no score.
        per_recording: event-IoU counts per scored recording.
        notes: things the user should know (unscored recordings, missing scores, ...).
    """

    config: MatchConfig
    scores: dict[str, Scores]
    ap: APResult | None
    per_recording: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)


def score_tables(
    pred: pd.DataFrame,
    ref: pd.DataFrame,
    config: MatchConfig | None = None,
    *,
    recordings: list[str] | None = None,
    pred_recordings: list[str] | None = None,
    regions: Regions | None = None,
) -> Report:
    """Score predictions against references over the reference recordings.

    Args:
        pred, ref: canonical event tables whose ``recording`` values are already paired.
        config: matching configuration (default ``MatchConfig()``).
        recordings: the recordings the references cover (default: those with reference events);
            predictions on other recordings are not scored and are reported in ``notes``.
        pred_recordings: the recordings the prediction tables cover, empty tables included
            (default: those with predictions); reference recordings outside are noted.
        regions: per recording the annotated spans (see :mod:`biomae.metrics.events`).
    """
    config = config or MatchConfig()
    notes: list[str] = []
    recordings = sorted(set(ref["recording"])) if recordings is None else sorted(recordings)
    scored = pred["recording"].isin(recordings).to_numpy()
    if not scored.all():
        others = sorted(set(pred["recording"][~scored]))
        notes.append(
            f"{int((~scored).sum())} prediction(s) on {len(others)} recording(s) without a "
            f"reference table were not scored: {others[:10]}"
        )
    pred = pred[scored].reset_index(drop=True)
    covered = set(pred["recording"]) if pred_recordings is None else set(pred_recordings)
    unpredicted = sorted(set(recordings) - covered)
    if unpredicted:
        notes.append(
            f"{len(unpredicted)} reference recording(s) have no prediction table (all their "
            f"events count as missed): {unpredicted[:10]}"
        )
    scores = {
        "event_iou": event_f1(pred, ref, config, regions=regions),
        "onset_offset": onset_offset_f1(pred, ref, config, regions=regions),
        "frame": frame_f1(pred, ref, config, regions=regions),
    }
    ap = None
    if len(pred) and pred["score"].isna().any():
        notes.append(
            f"{int(pred['score'].isna().sum())} of {len(pred)} predictions have no score: "
            "no precision-recall curve or AP"
        )
    else:
        ap = precision_recall(pred, ref, config, regions=regions)
    per_recording = _per_recording(pred, ref, scores["event_iou"], recordings, regions)
    return Report(config, scores, ap, per_recording, notes)


def _per_recording(pred, ref, scores: Scores, recordings, regions) -> pd.DataFrame:
    """Event-IoU counts per recording, from the matched pairs."""
    n_pred = pred[in_regions(pred, regions)].groupby("recording").size()
    n_ref = ref[in_regions(ref, regions)].groupby("recording").size()
    tp = pred["recording"].iloc[scores.pairs[:, 0]].value_counts() if len(scores.pairs) else {}
    rows = []
    for name in recordings:
        n_p, n_r, n_tp = int(n_pred.get(name, 0)), int(n_ref.get(name, 0)), int(tp.get(name, 0))
        f1 = 2 * n_tp / (n_p + n_r) if n_p + n_r else math.nan
        rows.append(
            dict(
                recording=name, n_ref=n_r, n_pred=n_p, tp=n_tp, fp=n_p - n_tp, fn=n_r - n_tp, f1=f1
            )
        )
    return pd.DataFrame(rows, columns=["recording", "n_ref", "n_pred", "tp", "fp", "fn", "f1"])


def metrics_table(report: Report) -> pd.DataFrame:
    """The long-format metrics table written as ``metrics.csv``."""
    rows = []
    for metric, scores in report.scores.items():
        rows.append(dict(metric=metric, scope="overall", label="", **scores.overall.as_dict()))
        if scores.per_class:
            rows.append(dict(metric=metric, scope="macro", label="", f1=scores.macro_f1))
            for label, counts in scores.per_class.items():
                rows.append(dict(metric=metric, scope="class", label=label, **counts.as_dict()))
    if report.ap is not None:
        rows.append(dict(metric="ap", scope="overall", label="", ap=report.ap.overall.ap))
        if report.ap.per_class:
            rows.append(dict(metric="ap", scope="macro", label="", ap=report.ap.mean_ap))
            for label, curve in report.ap.per_class.items():
                rows.append(dict(metric="ap", scope="class", label=label, ap=curve.ap))
    columns = ["metric", "scope", "label", "tp", "fp", "fn", "precision", "recall", "f1", "ap"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    return table.astype({"tp": "Int64", "fp": "Int64", "fn": "Int64"})


def _curves(report: Report) -> dict[str, object]:
    if report.ap is None:
        return {}
    return {"(all)": report.ap.overall} | dict(report.ap.per_class)


def _plot_curves(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for name, curve in _curves(report).items():
        if curve.n_ref == 0 or len(curve.tp) == 0:
            continue
        recall = np.concatenate([[0.0], curve.recall])
        precision = np.concatenate([[curve.precision[0]], curve.precision])
        ax.step(
            recall,
            precision,
            where="pre",
            lw=2 if name == "(all)" else 1,
            label=f"{name} (AP {curve.ap:.3f})",
        )
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01))
    ax.set_title(f"precision-recall at IoU >= {report.config.iou_threshold:g}")
    if ax.lines:
        ax.legend(fontsize="small", loc="lower left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def write_report(report: Report, out_dir: str | Path) -> list[Path]:
    """Write metrics.csv, per_recording.csv, metrics.json and the PR curves; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "metrics.csv", out_dir / "per_recording.csv", out_dir / "metrics.json"]
    with atomic_open(written[0]) as handle:
        metrics_table(report).to_csv(handle, index=False)
    with atomic_open(written[1]) as handle:
        report.per_recording.to_csv(handle, index=False)
    summary = {
        "config": asdict(report.config),
        "inputs": report.inputs,
        "notes": report.notes,
        "metrics": {name: s.as_dict() for name, s in report.scores.items()},
        "ap": None
        if report.ap is None
        else {"overall": report.ap.overall.ap, "mean_ap": report.ap.mean_ap}
        | {"per_class": {k: c.ap for k, c in report.ap.per_class.items()}},
    }
    atomic_write_text(written[2], json.dumps(json_safe(summary), indent=2) + "\n")
    curves = _curves(report)
    if curves:
        table = pd.concat(
            [c.as_frame().assign(label=name) for name, c in curves.items()], ignore_index=True
        )
        with atomic_open(out_dir / "pr_curve.csv") as handle:
            table[["label", *table.columns[:-1]]].to_csv(handle, index=False)
        _plot_curves(report, out_dir / "pr_curve.png")
        written += [out_dir / "pr_curve.csv", out_dir / "pr_curve.png"]
    return written
