"""One-to-one matching of predicted to reference events, without dense all-pairs matrices.

The conventions (criteria, maximum-cardinality matching with IoU tie-break) are documented in
:mod:`biomae.metrics.events`. Here: candidate pairs are found per group by a sorted search
(:func:`candidate_pairs`), the bipartite candidate graph is split into connected components
(:func:`candidate_blocks`), and each component is matched on its own small dense matrix
(:func:`match_one_to_one`), which gives the same result as one global matching.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from biomae.metrics.events import MatchConfig

_SLACK = 1e-9  # float slack at thresholds and collars
_MAX_PAIRS = 4_000_000  # candidate pairs examined at once (memory bound)


def match_groups(pred: pd.DataFrame, ref: pd.DataFrame, match_labels: bool):
    """Yield (key, pred_positions, ref_positions) for each recording (and label) present."""
    keys = ["recording", "label"] if match_labels else ["recording"]
    pred_groups = pred.groupby(keys, sort=True).indices if len(pred) else {}
    ref_groups = ref.groupby(keys, sort=True).indices if len(ref) else {}
    empty = np.zeros(0, dtype=np.int64)
    for key in sorted(set(pred_groups) | set(ref_groups), key=str):
        as_tuple = key if isinstance(key, tuple) else (key,)
        yield as_tuple, pred_groups.get(key, empty), ref_groups.get(key, empty)


def event_boxes(events: pd.DataFrame) -> np.ndarray:
    """(N, 4) float array of start_s, end_s, low_hz, high_hz."""
    return events[["start_s", "end_s", "low_hz", "high_hz"]].to_numpy(np.float64)


def _pair_iou(pred: np.ndarray, ref: np.ndarray, use_frequency: bool) -> np.ndarray:
    """IoU of aligned box pairs: pred (K, 4) with ref (K, 4); shape (K,)."""
    inter = np.clip(np.minimum(pred[:, 1], ref[:, 1]) - np.maximum(pred[:, 0], ref[:, 0]), 0, None)
    union = (pred[:, 1] - pred[:, 0]) + (ref[:, 1] - ref[:, 0]) - inter
    if use_frequency:
        band = np.minimum(pred[:, 3], ref[:, 3]) - np.maximum(pred[:, 2], ref[:, 2])
        inter = inter * np.clip(band, 0, None)
        area_p = (pred[:, 1] - pred[:, 0]) * (pred[:, 3] - pred[:, 2])
        union = area_p + (ref[:, 1] - ref[:, 0]) * (ref[:, 3] - ref[:, 2]) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def candidate_pairs(pred: np.ndarray, ref: np.ndarray, config: MatchConfig, criterion: str):
    """All (prediction, reference) pairs that pass the criterion, found without a dense matrix.

    References are sorted by start; a prediction only looks at references starting within
    ``[start_s - longest reference, end_s]`` (IoU needs overlap) or within the onset collar.

    Args:
        pred: (P, 4) boxes; ref: (R, 4) boxes (start_s, end_s, low_hz, high_hz).
        criterion: ``"iou"`` or ``"onset_offset"`` (see the module docstring).

    Returns:
        ``(p, r, iou)``: three (K,) arrays, the positions and the IoU of each candidate pair.
    """
    if criterion not in ("iou", "onset_offset"):
        raise ValueError(f"unknown criterion {criterion!r}; use 'iou' or 'onset_offset'")
    order = np.argsort(ref[:, 0], kind="stable")
    ref_start = ref[order, 0]
    if criterion == "iou":
        longest_s = float(np.max(ref[:, 1] - ref[:, 0])) if len(ref) else 0.0
        low_s, high_s = pred[:, 0] - longest_s, pred[:, 1]
    else:
        low_s = pred[:, 0] - config.t_collar_s - _SLACK
        high_s = pred[:, 0] + config.t_collar_s + _SLACK
    first = np.searchsorted(ref_start, low_s, side="left")
    count = np.searchsorted(ref_start, high_s, side="right") - first
    if count.sum() == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    found = []
    bounds = np.searchsorted(np.cumsum(count), np.arange(0, count.sum(), _MAX_PAIRS), side="right")
    for a, b in zip(bounds, [*bounds[1:], len(pred)], strict=True):
        n = count[a:b]
        p = np.repeat(np.arange(a, b), n)
        within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        r = order[np.repeat(first[a:b], n) + within]
        iou = _pair_iou(pred[p], ref[r], config.use_frequency)
        if criterion == "iou":
            hit = iou >= config.iou_threshold - _SLACK
        else:
            ref_len_s = ref[r, 1] - ref[r, 0]
            offset_collar_s = np.maximum(config.t_collar_s, config.offset_fraction * ref_len_s)
            hit = np.abs(pred[p, 0] - ref[r, 0]) <= config.t_collar_s + _SLACK
            hit &= np.abs(pred[p, 1] - ref[r, 1]) <= offset_collar_s + _SLACK
        found.append((p[hit], r[hit], iou[hit]))
    return tuple(np.concatenate(parts) for parts in zip(*found, strict=True))


def candidate_blocks(pred: pd.DataFrame, ref: pd.DataFrame, config: MatchConfig, criterion: str):
    """Yield ``(key, pred_rows, ref_rows, singles, blocks)`` per group (row positions into
    ``pred`` / ``ref``). The candidate graph is split into connected components: ``singles`` is a
    (K, 2) array of the (p, r) pairs that form a component alone (they simply match); ``blocks``
    lists ``(p_rows, r_rows, hit, weight)`` with dense candidate and IoU matrices for the others.

    Matching each component on its own gives the same result as one global matching.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pred_boxes, ref_boxes = event_boxes(pred), event_boxes(ref)
    for key, p_idx, r_idx in match_groups(pred, ref, config.match_labels):
        singles, blocks = np.zeros((0, 2), dtype=np.int64), []
        if len(p_idx) and len(r_idx):
            p, r, iou = candidate_pairs(pred_boxes[p_idx], ref_boxes[r_idx], config, criterion)
            n_p, n_nodes = len(p_idx), len(p_idx) + len(r_idx)
            graph = coo_matrix((np.ones(len(p)), (p, n_p + r)), shape=(n_nodes, n_nodes))
            _, component = connected_components(graph, directed=False)
            edge_component = component[p]
            n_edges = np.bincount(edge_component, minlength=n_nodes)
            alone = n_edges[edge_component] == 1
            singles = np.stack([p_idx[p[alone]], r_idx[r[alone]]], axis=1)
            rest = np.flatnonzero(~alone)
            order = rest[np.argsort(edge_component[rest], kind="stable")]
            splits = np.flatnonzero(np.diff(edge_component[order])) + 1
            for edges in np.split(order, splits) if len(order) else []:
                cp, local_p = np.unique(p[edges], return_inverse=True)
                cr, local_r = np.unique(r[edges], return_inverse=True)
                hit = np.zeros((len(cp), len(cr)), dtype=bool)
                weight = np.zeros((len(cp), len(cr)))
                hit[local_p, local_r] = True
                weight[local_p, local_r] = iou[edges]
                blocks.append((p_idx[cp], r_idx[cr], hit, weight))
        yield key, p_idx, r_idx, singles, blocks


def match_one_to_one(hit: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Maximum-cardinality one-to-one matching on a (P, R) candidate matrix, ties by max weight.

    Args:
        hit: (P, R) booleans, True where prediction p may match reference r.
        weight: (P, R) tie-break weights in [0, 1] (e.g. IoU).

    Returns:
        (M, 2) int array of matched (p, r) positions, sorted by p.
    """
    from scipy.optimize import linear_sum_assignment

    if not hit.any():
        return np.zeros((0, 2), dtype=np.int64)
    rows, cols = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0))
    sub_hit = hit[np.ix_(rows, cols)]
    big = min(sub_hit.shape) + 1.0  # more than any sum of weights in [0, 1]
    gain = np.where(sub_hit, big + np.clip(weight[np.ix_(rows, cols)], 0, 1), 0.0)
    p, r = linear_sum_assignment(gain, maximize=True)
    ok = sub_hit[p, r]
    return np.stack([rows[p[ok]], cols[r[ok]]], axis=1).astype(np.int64)
