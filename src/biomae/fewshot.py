"""Few-shot detection (the DCASE few-shot bioacoustic task): ``biomae annotate REC --shots TABLE``.

``TABLE`` (a Raven selection table ``.txt`` or a CSV with start/end columns) holds the first
annotated events of one call type in the recording — the *shots* (DCASE gives five; 1 to 5 are
taken). The rest of that call type is found by similarity to the shots:

1. every span below is embedded in one pass of the recording (:func:`biomae.spans.embed_spans`):
   the shots, the class-agnostic detector's events, and sliding windows of the shots' median
   duration every ``hop`` (a quarter of it, at most one encoder time patch);
2. the shots' *prototype* is the mean of their unit-length embeddings; a span's similarity is its
   cosine similarity to the prototype;
3. two thresholds, one for the detector's events and one for the sliding windows, are calibrated
   on the recording's own annotated part, ``[0, end of the last shot]`` (fully annotated for that
   call type under the DCASE rules): there, each candidate (detector event, or sliding-window peak:
   windows taken greedily by similarity, none overlapping) that overlaps a shot is scored against
   the prototype of the *other* shots (leave-one-out), and is true when it matches a shot (time
   IoU >= 0.3); the threshold maximises the event F1 of the candidates at or above it (the shots
   no candidate matches count as missed), taking the middle of the best range. Without any
   candidate matching a shot, the shots' leave-one-out scores against the candidates clear of them
   give a balanced-accuracy threshold (:func:`calibrate_threshold`);
4. events after the shots: ``mode="detector"`` keeps the detector's events at or above their
   threshold; ``"sliding"`` keeps the sliding-window peaks at or above theirs; ``"both"``
   (default) keeps the detector's and adds the peaks that overlap none of them (calls the
   detector missed).

Nothing that starts before the end of the last shot is reported (the DCASE rule). Events carry the
shots' label, ``score`` = the similarity clipped to [0, 1], and a ``similarity`` column.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biomae import audio as audio_io
from biomae.annotations import make_events
from biomae.detectors.wrapping import map_events
from biomae.spans import embed_spans, normalise

MODES = ("detector", "sliding", "both")
MAX_SHOTS = 5


class ShotsError(ValueError):
    """The shots table cannot be used; the message names it and the fix."""


def read_shots(path: str | Path) -> pd.DataFrame:
    """The shots of ``path`` (Raven ``.txt`` or ``.csv``), sorted by start.

    Raises:
        ShotsError: no such file, another format, no events or more than :data:`MAX_SHOTS`.
    """
    from biomae.annotations import read_annotations

    path = Path(path)
    if not path.is_file():
        raise ShotsError(f"--shots {path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".csv"):
        raise ShotsError(f"--shots {path}: give a Raven selection table (.txt) or a CSV (.csv)")
    shots = read_annotations(path, "raven" if suffix == ".txt" else "csv")
    shots = shots.sort_values("start_s", kind="stable").reset_index(drop=True)
    if not len(shots):
        raise ShotsError(f"--shots {path}: no events; give the first annotated events (5 in DCASE)")
    if len(shots) > MAX_SHOTS:
        raise ShotsError(
            f"--shots {path}: {len(shots)} events; give only the first {MAX_SHOTS} annotated "
            "events of the call type (the DCASE few-shot rule)"
        )
    return shots


@dataclass
class FewShotConfig:
    """How the shots are used (module docstring).

    Attributes:
        mode: "detector", "sliding" or "both".
        hop_fraction: sliding windows every this fraction of the shots' median duration (at most
            one encoder time patch apart).
        context: embed spans in the context of the recording rather than cut out
            (:func:`biomae.spans.embed_spans`).
    """

    mode: str = "both"
    hop_fraction: float = 0.25
    context: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {MODES}")
        if not 0 < self.hop_fraction <= 1:
            raise ValueError(f"hop_fraction must lie in (0, 1], got {self.hop_fraction}")


def _overlaps(starts, ends, other_starts, other_ends, margin_s: float = 0.0) -> np.ndarray:
    """``(N,)`` whether each span overlaps any of the others widened by ``margin_s``."""
    starts, ends = np.asarray(starts)[:, None], np.asarray(ends)[:, None]
    lo = np.asarray(other_starts)[None, :] - margin_s
    hi = np.asarray(other_ends)[None, :] + margin_s
    if not lo.size:
        return np.zeros(len(starts), bool)
    return ((starts < hi) & (ends > lo)).any(axis=1)


class FewShotDetector:
    """Finds the rest of the shots' call type in one recording (module docstring).

    Args:
        detector: the class-agnostic :class:`biomae.detectors.Detector`.
        embedder: what embeds spans (:func:`biomae.spans.embed_spans`).
        shots: the shots (an event table, sorted by start).
        config: :class:`FewShotConfig`.
        table: the shots' file, named in ``params()`` with a fingerprint of its contents.
    """

    def __init__(self, detector, embedder, shots: pd.DataFrame, config=None, table=None):
        from biomae.detectors import complete

        self.detector = complete(detector)
        self.name = self.detector.name
        self.embedder = embedder
        self.shots = shots.sort_values("start_s", kind="stable").reset_index(drop=True)
        self.config = config or FewShotConfig()
        labels = [str(x) for x in self.shots["label"] if str(x).strip()]
        self.label = labels[0] if labels else "call"
        digest = hashlib.sha256(Path(table).read_bytes()).hexdigest()[:16] if table else ""
        self.settings = {
            "table": str(table or ""),
            "fingerprint": digest,
            "n_shots": len(self.shots),
            "mode": self.config.mode,
            "context": self.config.context,
            "embedder": str(getattr(embedder, "model_path", type(embedder).__name__)),
        }
        self.threshold = float("nan")  # of the last recording, for reports

    def params(self) -> dict:
        return {**self.detector.params(), "shots": self.settings}

    def name_for(self, path, info=None) -> str:
        return f"{self.detector.name_for(path, info)}+shots"

    def detect_file(self, path, recording=None, info=None) -> pd.DataFrame:
        info = audio_io.info(path) if info is None else info
        events = self.detector.detect_file(path, recording, info)
        return self.find(path, events, info)

    def detect_many(self, paths, infos=None):
        yield from map_events(
            self.detector, paths, infos, lambda p, e, i: self.find(p, e, i or audio_io.info(p))
        )

    def find(self, path, events: pd.DataFrame, info) -> pd.DataFrame:
        """The call type's events in ``path`` after the shots, from the detector's ``events``."""
        shots, events = self.shots, events.reset_index(drop=True)
        shot_lo, shot_hi = shots["start_s"].to_numpy(), shots["end_s"].to_numpy()
        if shot_hi.max() > info.duration_s + 1e-3:
            raise ShotsError(
                f"shots end at {shot_hi.max():g} s, after {path} ends ({info.duration_s:g} s): "
                "are they from this recording?"
            )
        shots_end_s = float(shot_hi.max())
        length_s = max(float(np.median(shot_hi - shot_lo)), 1e-3)
        patch_s = float(self.embedder.patch_s()) if hasattr(self.embedder, "patch_s") else length_s
        hop_s = min(length_s * self.config.hop_fraction, patch_s)
        win_lo = np.arange(0.0, max(info.duration_s - length_s, 0.0) + 1e-9, hop_s)
        win_hi = np.minimum(win_lo + length_s, info.duration_s)
        det_lo, det_hi = events["start_s"].to_numpy(), events["end_s"].to_numpy()
        vectors = normalise(
            embed_spans(
                self.embedder,
                path,
                np.concatenate([shot_lo, det_lo, win_lo]),
                np.concatenate([np.minimum(shot_hi, info.duration_s), det_hi, win_hi]),
                info=info,
                context=self.config.context,
            )
        )
        n_shots, n_det = len(shots), len(events)
        self._shot_vectors = shot_vec = vectors[:n_shots]
        prototype = normalise(shot_vec.mean(0))
        det_sim = self._similarity(vectors[n_shots : n_shots + n_det], det_lo, det_hi)
        win_sim = self._similarity(vectors[n_shots + n_det :], win_lo, win_hi)
        # calibration on [0, end of the last shot], each candidate overlapping a shot scored
        # without that shot (leave-one-out): detector events, and sliding-window peaks
        before = det_lo < shots_end_s
        det_threshold = self._calibrate(det_sim[before], det_lo[before], det_hi[before])
        peaks = _peaks(win_lo, win_hi, win_sim, win_lo < shots_end_s)
        win_threshold = self._calibrate(win_sim[peaks], win_lo[peaks], win_hi[peaks])
        self.threshold = det_threshold
        # after the shots, scored against all the shots
        det_sim = vectors[n_shots : n_shots + n_det] @ prototype
        win_sim = vectors[n_shots + n_det :] @ prototype
        keep = (det_lo >= shots_end_s) & (det_sim >= det_threshold)
        kept = events.loc[keep].assign(similarity=det_sim[keep])
        if self.config.mode == "sliding":
            kept = kept.iloc[:0]
        rows = [kept]
        if self.config.mode in ("sliding", "both"):
            after = (win_lo >= shots_end_s) & (win_sim >= win_threshold)
            after &= ~_overlaps(win_lo, win_hi, kept["start_s"], kept["end_s"])
            chosen = _peaks(win_lo, win_hi, win_sim, after)
            rows.append(self._windows(path, win_lo[chosen], win_hi[chosen], win_sim[chosen]))
        found = pd.concat(rows, ignore_index=True).sort_values("start_s", kind="stable")
        return make_events(
            found.assign(
                label=self.label,
                score=found["similarity"].clip(0.0, 1.0),
                similarity=found["similarity"].round(4),
            ).reset_index(drop=True)
        )

    def _similarity(self, vectors: np.ndarray, lo_s, hi_s) -> np.ndarray:
        """Cosine similarity of unit ``vectors`` to the shots' prototype; a span that overlaps
        shot ``j`` is compared with the prototype of the other shots (leave-one-out)."""
        shot_vec = self._shot_vectors
        similarity = vectors @ normalise(shot_vec.mean(0))
        if len(shot_vec) < 2:
            return similarity
        for j, (shot_lo, shot_hi) in enumerate(
            zip(self.shots["start_s"], self.shots["end_s"], strict=True)
        ):
            over = _overlaps(lo_s, hi_s, [shot_lo], [shot_hi])
            others = normalise(np.delete(shot_vec, j, axis=0).mean(0))
            similarity[over] = vectors[over] @ others
        return similarity

    def _calibrate(self, similarity, lo_s, hi_s) -> float:
        """The threshold that maximises event F1 on the annotated part: candidates matching a
        shot (IoU >= 0.3) are true, the others false; shots no candidate matches are missed.
        Without a matching candidate: the balanced rule of
        :func:`calibrate_threshold` (shots' leave-one-out scores against the
        candidates that overlap no shot)."""
        shot_lo, shot_hi = self.shots["start_s"].to_numpy(), self.shots["end_s"].to_numpy()
        iou = _iou(lo_s, hi_s, shot_lo, shot_hi)  # (N, S)
        positive = (iou >= MATCH_IOU).any(axis=1)
        if not positive.any():
            own = self._similarity(self._shot_vectors, shot_lo, shot_hi)
            clear = ~_overlaps(lo_s, hi_s, shot_lo, shot_hi)
            return calibrate_threshold(own, similarity[clear])
        return f1_threshold(similarity, positive, len(self.shots))

    def _windows(self, path, win_lo, win_hi, win_sim) -> pd.DataFrame:
        """Sliding windows as events (the shots' frequency band, when they all have one)."""
        boxes = self.shots[["low_hz", "high_hz"]].to_numpy(np.float64)
        low_hz, high_hz = (
            (float(boxes[:, 0].min()), float(boxes[:, 1].max()))
            if np.isfinite(boxes).all()
            else (np.nan, np.nan)
        )
        return pd.DataFrame(
            {
                "recording": str(path),
                "start_s": win_lo,
                "end_s": win_hi,
                "low_hz": low_hz,
                "high_hz": high_hz,
                "source": "biomae-fewshot",
                "similarity": win_sim,
            }
        )


def calibrate_threshold(positives: np.ndarray, negatives: np.ndarray) -> float:
    """The similarity that best separates ``positives`` (kept at or above) from ``negatives``
    (below) by balanced accuracy; the middle of the best range (module docstring)."""
    positives = np.asarray(positives, np.float64)
    negatives = np.asarray(negatives, np.float64)
    if not len(negatives):
        return float(positives.min())
    values = np.unique(np.concatenate([positives, negatives]))
    # candidate thresholds: every value, and just above the largest
    candidates = np.append(values, values[-1] + 1e-6)
    recall = (positives[None, :] >= candidates[:, None]).mean(1)
    rejected = (negatives[None, :] < candidates[:, None]).mean(1)
    balanced = (recall + rejected) / 2
    best = np.isclose(balanced, balanced.max())
    # candidate j stands for the thresholds in (values[j - 1], values[j]]: the first run of best
    # candidates lo..hi is the range (values[lo - 1], values[hi]]; take its middle
    lo = int(np.argmax(best))
    hi = lo + int(np.argmin(np.append(best[lo:], False))) - 1
    low_edge = values[lo - 1] if lo > 0 else candidates[lo]
    return float((low_edge + candidates[hi]) / 2)


MATCH_IOU = 0.3  # a candidate matches a shot at this time IoU (the DCASE criterion)


def _iou(lo_s, hi_s, other_lo, other_hi) -> np.ndarray:
    """``(N, M)`` time IoU of spans against other spans."""
    lo_s, hi_s = np.asarray(lo_s)[:, None], np.asarray(hi_s)[:, None]
    other_lo, other_hi = np.asarray(other_lo)[None, :], np.asarray(other_hi)[None, :]
    inter = np.clip(np.minimum(hi_s, other_hi) - np.maximum(lo_s, other_lo), 0, None)
    union = np.maximum(hi_s, other_hi) - np.minimum(lo_s, other_lo)
    return inter / np.maximum(union, 1e-12)


def _peaks(lo_s, hi_s, similarity, allowed) -> np.ndarray:
    """Indices of the ``allowed`` windows taken greedily by similarity, none overlapping."""
    chosen: list[int] = []
    taken = np.zeros(len(lo_s), bool)  # windows overlapping one chosen
    for i in np.argsort(-similarity, kind="stable"):
        if not allowed[i] or taken[i]:
            continue
        chosen.append(int(i))
        taken |= (lo_s < hi_s[i]) & (hi_s > lo_s[i])
    return np.array(sorted(chosen), int)


def f1_threshold(similarity, positive, n_targets: int) -> float:
    """The similarity threshold that maximises F1 of the candidates at or above it (``positive``:
    those that are true; ``n_targets``: the true events, matched or not); the middle of the first
    best range, as :func:`calibrate_threshold`."""
    similarity = np.asarray(similarity, np.float64)
    values = np.unique(similarity)
    candidates = np.append(values, values[-1] + 1e-6)
    above = similarity[None, :] >= candidates[:, None]  # (T, N)
    tp = np.minimum((above & positive[None, :]).sum(1), n_targets)
    fp = (above & ~positive[None, :]).sum(1)
    f1 = 2 * tp / np.maximum(1, 2 * tp + fp + (n_targets - tp))
    best = np.isclose(f1, f1.max())
    lo = int(np.argmax(best))
    hi = lo + int(np.argmin(np.append(best[lo:], False))) - 1
    low_edge = values[lo - 1] if lo > 0 else candidates[lo]
    return float((low_edge + candidates[hi]) / 2)
