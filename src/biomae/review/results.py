"""What a review yields: a summary with the detector's precision, re-exported annotation tables,
and the recordings that fine-tuning may use.

Precision of the detector, from the reviewed sample: accepted / (accepted + rejected) over the
reviewed detections (drawn calls are misses, not detections), with a 95% Wilson interval. Relabelled
or re-bounded detections count as accepted (a call was there).

Training data (:func:`reviewed_recordings`): a recording is *fully reviewed* when every detection
in it has a decision. Only fully reviewed recordings are used: the reviewer has looked at each
detection and drawn the calls it missed, so the recording is taken as fully annotated. Its
positives are the accepted detections (with corrected boundaries and labels) and the drawn calls;
its rejected detections are hard negatives, spans known to hold no call (unless a positive
overlaps them).
Recordings with any unreviewed detection are left out: an unreviewed detection is never taken as
truth, either way.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from biomae.review.store import ReviewStore, wilson_interval


def summary(store: ReviewStore) -> dict:
    """``{"overall": row, "recordings": [row per recording], "labels": [row per label]}``; each
    row: events, reviewed, accepted, rejected, added, precision, precision_low, precision_high."""
    t = store.table
    detections = t[t["status"] != "added"]

    def row(frame: pd.DataFrame, added: int) -> dict:
        accepted = int((frame["status"] == "accepted").sum())
        rejected = int((frame["status"] == "rejected").sum())
        n = accepted + rejected
        low, high = wilson_interval(accepted, n)
        return {
            "events": len(frame), "reviewed": n, "accepted": accepted, "rejected": rejected,
            "added": added, "precision": accepted / n if n else None,
            "precision_low": None if n == 0 else low, "precision_high": None if n == 0 else high,
        }  # fmt: skip

    added = t[t["status"] == "added"]
    n_added_rec = added.groupby("key").size()
    n_added_label = added.groupby("label").size()
    recordings = [
        {"recording": key} | row(detections[detections["key"] == key], int(n_added_rec.get(key, 0)))
        for key in store.recordings
    ]
    labels = sorted(set(detections["orig_label"]) | set(added["label"]))
    by_label = [
        {"label": label}
        | row(detections[detections["orig_label"] == label], int(n_added_label.get(label, 0)))
        for label in labels
    ]
    return {"overall": row(detections, len(added)), "recordings": recordings, "labels": by_label}


def summary_text(result: dict) -> str:
    """:func:`summary` as an aligned text table (overall, per label, per recording)."""

    def pct(x) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    lines = [f"{'':24s} {'events':>7s} {'reviewed':>8s} {'accepted':>8s} {'rejected':>8s} "
             f"{'added':>6s}  precision [95% Wilson]"]  # fmt: skip
    rows = [("all", result["overall"])]
    rows += [(f"label {r['label']}", r) for r in result["labels"]]
    rows += [(r["recording"], r) for r in result["recordings"]]
    for name, r in rows:
        lines.append(
            f"{name[:24]:24s} {r['events']:7d} {r['reviewed']:8d} {r['accepted']:8d} "
            f"{r['rejected']:8d} {r['added']:6d}  {pct(r['precision'])} "
            f"[{pct(r['precision_low'])}, {pct(r['precision_high'])}]"
        )
    return "\n".join(lines)


def current_events(store: ReviewStore, key: str, only_reviewed: bool = False) -> pd.DataFrame:
    """Recording ``key``'s events after review, as a canonical event table: rejected detections
    dropped, corrections applied, drawn calls added (``only_reviewed``: unreviewed ones dropped)."""
    from biomae.annotations.schema import make_events, sort_events

    t = store.table[store.table["key"] == key]
    keep = t["status"].isin(["accepted", "added"]) if only_reviewed else t["status"] != "rejected"
    t = t[keep]
    source = t["status"].map({"": "biomae-detector"}).fillna("biomae-review:" + t["status"])
    events = make_events(
        {
            "recording": store.recordings[key]["path"],
            "start_s": t["start_s"].to_numpy(),
            "end_s": t["end_s"].to_numpy(),
            "low_hz": t["low_hz"].to_numpy(),
            "high_hz": t["high_hz"].to_numpy(),
            "label": t["label"].to_numpy(),
            "score": t["score"].to_numpy(),
            "source": source.to_numpy(),
        }  # fmt: skip
    )
    return sort_events(events) if len(events) else events


def export(
    store: ReviewStore, out_dir: str | Path, formats: list[str], only_reviewed: bool = False
) -> list[Path]:
    """Write every recording's reviewed events as ``out_dir/<key><suffix>`` per format (Raven,
    Audacity, CSV, … as ``biomae annotate`` names them) and ``out_dir/events.csv``; each file
    atomically. Returns the paths written."""
    from biomae.annotations import output_suffixes, write_annotations
    from biomae.annotations.schema import concat_events

    suffixes = output_suffixes()
    unknown = [f for f in formats if f not in suffixes]
    if unknown:
        known = ", ".join(suffixes)
        raise ValueError(f"--format {','.join(unknown)}: unknown; choose from {known}")
    root = Path(out_dir)
    written, tables = [], []
    for key in store.recordings:
        events = current_events(store, key, only_reviewed)
        tables.append(events)
        for fmt in formats:
            path = root / f"{key}{suffixes[fmt]}"
            path.parent.mkdir(parents=True, exist_ok=True)
            written.append(write_annotations(events, path, fmt))
    root.mkdir(parents=True, exist_ok=True)
    written.append(write_annotations(concat_events(tables), root / "events.csv", "csv"))
    return written


def reviewed_recordings(out_dir: str | Path) -> tuple[list[dict], list[str]]:
    """The fully reviewed recordings of a reviewed annotate folder, for fine-tuning.

    Returns:
        ``(items, left_out)``: each item ``{"key", "path", "duration_s", "sample_rate", "events"
        (canonical table of positives, ``recording`` = key), "negatives" (DataFrame of rejected
        spans: start_s, end_s)}``; ``left_out`` names the recordings with unreviewed detections.
    """
    store = ReviewStore(out_dir)
    items, left_out = [], []
    for key, rec in store.recordings.items():
        t = store.table[store.table["key"] == key]
        if (t["status"] == "").any() or t.empty:
            left_out.append(key)
            continue
        events = current_events(store, key, only_reviewed=True).assign(recording=key)
        rejected = t[(t["status"] == "rejected") & t["orig_start_s"].notna()]
        negatives = pd.DataFrame(
            {
                "start_s": rejected["orig_start_s"].to_numpy(float),
                "end_s": rejected["orig_end_s"].to_numpy(float),
            }  # fmt: skip
        )
        items.append(rec | {"events": events.reset_index(drop=True), "negatives": negatives})
    return items, left_out
