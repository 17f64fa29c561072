"""Cross-checks of biomae.metrics against independent implementations on the same inputs.

- mir_eval: ``util.match_events`` with an IoU distance (the DCASE few-shot bioacoustic recipe:
  IoU >= 0.3 then maximum bipartite matching) and ``transcription.match_notes`` for onset/offset
  collars (labels encoded as pitches far apart, so a match needs equal labels).
- sed_eval: ``EventBasedMetrics`` (optimal matching, t_collar, percentage_of_length) and
  ``SegmentBasedMetrics`` at a 10-ms resolution for frame F1 (needs setuptools < 81).
- scikit-learn: top-k accuracy and multi-label F1 (micro, macro, samples).

Every test skips cleanly when its reference library is missing.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from biomae.annotations.schema import make_events
from biomae.metrics.clips import multilabel_f1, top_k_accuracy
from biomae.metrics.events import MatchConfig, event_f1, frame_f1, onset_offset_f1

LABELS = ("a", "b", "c")
PITCH_HZ = {"a": 200.0, "b": 800.0, "c": 3200.0, "": 440.0}  # two octaves apart: never confused


def random_pair(seed: int, n_ref: int = 40, span_s: float = 20.0):
    """Reference events and a noisy prediction of them (jittered copies, drops, extras)."""
    rng = np.random.default_rng(seed)
    start = np.sort(rng.uniform(0, span_s, n_ref))
    ref = make_events(
        dict(
            start_s=start,
            end_s=start + rng.uniform(0.05, 1.0, n_ref),
            label=rng.choice(LABELS, n_ref),
        ),
        recording="rec",
    )
    keep = rng.random(n_ref) > 0.2
    jitter = rng.normal(0, 0.15, (int(keep.sum()), 2))
    p_start = np.clip(ref["start_s"].to_numpy()[keep] + jitter[:, 0], 0, None)
    p_end = np.maximum(p_start + 0.02, ref["end_s"].to_numpy()[keep] + jitter[:, 1])
    labels = ref["label"].to_numpy()[keep].copy()
    flip = rng.random(len(labels)) < 0.2
    labels[flip] = rng.choice(LABELS, int(flip.sum()))
    n_extra = 10
    e_start = rng.uniform(0, span_s, n_extra)
    pred = make_events(
        dict(
            start_s=np.concatenate([p_start, e_start]),
            end_s=np.concatenate([p_end, e_start + rng.uniform(0.05, 1.0, n_extra)]),
            label=np.concatenate([labels, rng.choice(LABELS, n_extra)]),
        ),
        recording="rec",
    )
    return pred, ref


def _intervals(table):
    return table[["start_s", "end_s"]].to_numpy(float)


SEEDS = range(6)


@pytest.mark.parametrize("seed", SEEDS)
def test_iou_matching_agrees_with_mir_eval_bipartite(seed):
    util = pytest.importorskip("mir_eval.util")
    pred, ref = random_pair(seed)

    def one_minus_iou(r, e):
        inter = np.clip(
            np.minimum(r[:, None, 1], e[None, :, 1]) - np.maximum(r[:, None, 0], e[None, :, 0]),
            0,
            None,
        )
        union = (r[:, None, 1] - r[:, None, 0]) + (e[None, :, 1] - e[None, :, 0]) - inter
        return 1 - inter / union

    for threshold in (0.1, 0.3, 0.5):
        matching = util.match_events(
            _intervals(ref), _intervals(pred), 1 - threshold, one_minus_iou
        )
        ours = event_f1(pred, ref, MatchConfig(iou_threshold=threshold))
        assert ours.overall.tp == len(matching)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("match_labels", [False, True])
def test_onset_offset_agrees_with_mir_eval_transcription(seed, match_labels):
    transcription = pytest.importorskip("mir_eval.transcription")
    pred, ref = random_pair(seed)

    def pitches(table):
        return np.array([PITCH_HZ[label if match_labels else ""] for label in table["label"]])

    for collar_s, fraction in ((0.2, 0.2), (0.1, 0.5), (0.05, 0.0)):
        matching = transcription.match_notes(
            _intervals(ref),
            pitches(ref),
            _intervals(pred),
            pitches(pred),
            onset_tolerance=collar_s,
            pitch_tolerance=50.0,
            offset_ratio=fraction,
            offset_min_tolerance=collar_s,
        )
        config = MatchConfig(
            t_collar_s=collar_s, offset_fraction=fraction, match_labels=match_labels
        )
        assert onset_offset_f1(pred, ref, config).overall.tp == len(matching)


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_onset_only_agrees_with_mir_eval_onset(seed):
    util = pytest.importorskip("mir_eval.util")
    pred, ref = random_pair(seed)
    matching = util.match_events(ref["start_s"].to_numpy(), pred["start_s"].to_numpy(), 0.1)
    config = MatchConfig(t_collar_s=0.1, offset_fraction=1e6)  # offsets always pass
    assert onset_offset_f1(pred, ref, config).overall.tp == len(matching)


def _sed_eval():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import sed_eval  # noqa: F401  (imports pkg_resources: setuptools < 81)
        except ImportError as err:
            pytest.skip(f"sed_eval not importable: {err}")
    import sed_eval

    return sed_eval


def _event_list(table):
    return [
        dict(file="rec", event_label=r.label, event_onset=r.start_s, event_offset=r.end_s)
        for r in table.itertuples()
    ]


@pytest.mark.parametrize("seed", SEEDS)
def test_event_based_agrees_with_sed_eval(seed):
    sed_eval = _sed_eval()
    pred, ref = random_pair(seed)
    for collar_s, fraction in ((0.2, 0.2), (0.2, 0.5), (0.1, 0.0)):
        metric = sed_eval.sound_event.EventBasedMetrics(
            event_label_list=list(LABELS), t_collar=collar_s, percentage_of_length=fraction
        )
        metric.evaluate(_event_list(ref), _event_list(pred))
        config = MatchConfig(t_collar_s=collar_s, offset_fraction=fraction, match_labels=True)
        ours = onset_offset_f1(pred, ref, config)
        assert ours.overall.tp == metric.overall["Ntp"]
        assert ours.overall.tp + ours.overall.fp == metric.overall["Nsys"]
        assert ours.overall.tp + ours.overall.fn == metric.overall["Nref"]
        for label in LABELS:
            if label in ours.per_class:
                assert ours.per_class[label].tp == metric.class_wise[label]["Ntp"]
        reference_f = metric.results_overall_metrics()["f_measure"]["f_measure"]
        assert ours.overall.f1 == pytest.approx(reference_f)


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_frame_f1_agrees_with_sed_eval_segments(seed):
    sed_eval = _sed_eval()
    pred, ref = random_pair(seed, n_ref=25, span_s=8.0)
    metric = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=list(LABELS), time_resolution=0.01
    )
    metric.evaluate(_event_list(ref), _event_list(pred))
    ours = frame_f1(pred, ref, MatchConfig(frame_s=0.01, match_labels=True))
    assert ours.overall.tp == metric.overall["Ntp"]
    assert ours.overall.fp == metric.overall["Nfp"]
    assert ours.overall.fn == metric.overall["Nfn"]
    for label in LABELS:
        assert ours.per_class[label].tp == metric.class_wise[label]["Ntp"]
        assert ours.per_class[label].fp == metric.class_wise[label]["Nfp"]


def test_top_k_accuracy_agrees_with_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    classes = [f"c{i}" for i in range(6)]
    y_true = list(rng.choice(classes, 200))
    scores = rng.random((200, 6))
    for k in (1, 2, 5):
        expected = metrics.top_k_accuracy_score(y_true, scores, k=k, labels=classes)
        assert top_k_accuracy(y_true, scores, classes, k) == pytest.approx(expected)


def test_multilabel_f1_agrees_with_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    rng = np.random.default_rng(1)
    names = ["owl", "frog", "wren", "bat", "deer"]
    true_sets = [set(rng.choice(names, rng.integers(0, 3), replace=False)) for _ in range(60)]
    pred_sets = [set(rng.choice(names, rng.integers(0, 3), replace=False)) for _ in range(60)]
    binarizer = preprocessing.MultiLabelBinarizer(classes=names).fit([names])
    y_true, y_pred = binarizer.transform(true_sets), binarizer.transform(pred_sets)
    ours = multilabel_f1(true_sets, pred_sets)
    assert ours["micro"].f1 == pytest.approx(metrics.f1_score(y_true, y_pred, average="micro"))
    assert ours["macro_f1"] == pytest.approx(metrics.f1_score(y_true, y_pred, average="macro"))
    samples = metrics.f1_score(y_true, y_pred, average="samples", zero_division=1.0)
    assert ours["samples_f1"] == pytest.approx(samples)
