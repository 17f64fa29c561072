"""Train / validation / test splits by recording, individual and site — without leakage.

Recordings are first joined into *groups*: two recordings are in one group when they share, within
a dataset, a non-empty value of any ``by`` column (``individual``, ``site`` by default), or when one
duplicates the other (same ``checksum``, or ``duplicate_of``). Groups are connected components, so
a bird recorded at two sites pulls both sites into one group. Whole groups are then dealt to the
splits: in an order fixed by a hash of ``seed`` and the group's name (independent of row order),
each group goes to the split furthest below its target share of total duration. The same seed and
recordings always give the same split; no group ever appears in two splits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def recording_groups(
    recordings: pd.DataFrame, by: Sequence[str] = ("individual", "site")
) -> pd.Series:
    """The group of each recording (the smallest ``recording_id`` in its connected component).

    Args:
        recordings: a catalog recordings table (``recording_id``, ``dataset`` and the ``by``
            columns; ``checksum`` and ``duplicate_of`` when present).
        by: metadata columns whose shared values join recordings (missing columns are ignored).

    Returns:
        A Series of group names aligned with ``recordings``.
    """
    ids = recordings["recording_id"].astype(str).tolist()
    if len(set(ids)) != len(ids):
        raise ValueError("recording_id values must be unique to split recordings")
    parent = list(range(len(ids)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(members: Sequence[int]) -> None:
        root = find(members[0])
        for j in members[1:]:
            other = find(j)
            if other != root:
                parent[other] = root

    dataset = (
        recordings["dataset"].astype(str)
        if "dataset" in recordings
        else pd.Series("", index=recordings.index)
    )
    keys: list[pd.Series] = []
    for column in by:
        if column in recordings:
            values = recordings[column].fillna("").astype(str)
            keys.append((column + "\0" + dataset + "\0" + values).where(values != ""))
    if "checksum" in recordings:
        keys.append(recordings["checksum"].fillna("").astype(str).replace("", np.nan))
    for key in keys:
        positions = pd.Series(np.arange(len(ids)), index=recordings.index)
        for _, members in positions.groupby(key.to_numpy(), dropna=True):
            if len(members) > 1:
                union(members.tolist())
    if "duplicate_of" in recordings:
        index = {rid: i for i, rid in enumerate(ids)}
        for i, original in enumerate(recordings["duplicate_of"].fillna("").astype(str)):
            if original in index:
                union([index[original], i])
    smallest: dict[int, str] = {}
    for i, rid in enumerate(ids):
        root = find(i)
        smallest[root] = min(smallest.get(root, rid), rid)
    return pd.Series([smallest[find(i)] for i in range(len(ids))], index=recordings.index)


def _deal(
    recordings: pd.DataFrame, shares: Mapping[str, float], seed: int, by: Sequence[str]
) -> pd.Series:
    groups = recording_groups(recordings, by)
    weight = recordings["duration_s"].astype(float) if "duration_s" in recordings else 1.0
    sizes = pd.Series(weight, index=recordings.index).groupby(groups).sum()

    def order(name: str) -> str:
        return hashlib.sha1(f"{seed}\0{name}".encode()).hexdigest()

    names = list(shares)
    target = np.array([shares[n] for n in names], dtype=float) * float(sizes.sum())
    filled = np.zeros(len(names))
    assigned: dict[str, str] = {}
    for group in sorted(sizes.index, key=order):
        k = int(np.argmax((target - filled) / np.maximum(target, 1e-12)))
        assigned[group] = names[k]
        filled[k] += sizes[group]
    return groups.map(assigned)


def assign_splits(
    recordings: pd.DataFrame,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    *,
    seed: int = 0,
    by: Sequence[str] = ("individual", "site"),
) -> pd.Series:
    """Split name per recording, dealing whole groups (see module docstring).

    Args:
        recordings: catalog recordings (``recording_id``, ``dataset``, ``duration_s``, ``by``).
        fractions: split name -> share of total duration (positive, summing to 1).
        seed: changes which groups land where, deterministically.
        by: columns that join recordings into groups.

    Raises:
        ValueError: fractions that are not positive or do not sum to 1.
    """
    values = np.array(list(fractions.values()), dtype=float)
    if len(values) == 0 or (values <= 0).any() or abs(values.sum() - 1) > 1e-6:
        raise ValueError(f"split fractions must be positive and sum to 1, got {dict(fractions)}")
    return _deal(recordings, fractions, seed, by)


def group_kfold(
    recordings: pd.DataFrame,
    n_folds: int,
    *,
    seed: int = 0,
    by: Sequence[str] = ("individual", "site"),
) -> pd.Series:
    """Fold number (0 .. n_folds-1) per recording; groups never span two folds.

    Raises:
        ValueError: ``n_folds`` < 2 or more folds than groups.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    n_groups = recording_groups(recordings, by).nunique()
    if n_folds > n_groups:
        raise ValueError(
            f"{n_folds} folds need at least {n_folds} groups; the recordings form {n_groups}"
        )
    folds = _deal(recordings, {str(k): 1.0 / n_folds for k in range(n_folds)}, seed, by)
    return folds.astype(int)
