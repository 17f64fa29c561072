"""Splits by recording, individual and site: deterministic, proportional, never leaking a group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biomae.datasets.splits import assign_splits, group_kfold, recording_groups


def table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "recording_id": [f"r{i:03d}" for i in range(n)],
            "dataset": rng.choice(["a", "b"], n),
            "individual": [f"bird{k}" if k < 8 else "" for k in rng.integers(0, 12, n)],
            "site": [f"site{k}" if k < 5 else "" for k in rng.integers(0, 20, n)],
            "checksum": [f"c{i}" for i in range(n)],
            "duration_s": rng.uniform(1, 100, n),
        }
    )


def assert_no_leak(recordings: pd.DataFrame, splits: pd.Series) -> None:
    for column in ("individual", "site", "checksum"):
        named = recordings[recordings[column] != ""]
        per_group = splits[named.index].groupby([named["dataset"], named[column]]).nunique()
        assert (per_group == 1).all(), f"a {column} appears in two splits"


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 80), seed=st.integers(0, 10_000))
def test_no_individual_site_or_duplicate_in_two_splits(n, seed):
    recordings = table(n, seed)
    recordings.loc[recordings.index[-1], "checksum"] = recordings["checksum"].iloc[0]  # a duplicate
    splits = assign_splits(recordings, seed=seed)
    assert splits.notna().all() and set(splits) <= {"train", "val", "test"}
    assert_no_leak(recordings, splits)


def test_deterministic_and_independent_of_row_order():
    recordings = table(200)
    first = assign_splits(recordings, seed=3)
    shuffled = recordings.sample(frac=1.0, random_state=1)
    assert (assign_splits(shuffled, seed=3)[recordings.index] == first).all()
    assert not (assign_splits(recordings, seed=4) == first).all()


def test_shares_follow_fractions_by_duration():
    recordings = table(400).assign(individual="", site="")  # every recording its own group
    splits = assign_splits(recordings, {"train": 0.7, "test": 0.3}, seed=0)
    share = recordings["duration_s"].groupby(splits).sum() / recordings["duration_s"].sum()
    assert share["train"] == pytest.approx(0.7, abs=0.02)


def test_groups_join_through_shared_metadata():
    recordings = pd.DataFrame(
        {
            "recording_id": ["a", "b", "c", "d"],
            "dataset": "x",
            "individual": ["bird1", "bird1", "bird2", "bird3"],
            "site": ["s1", "s2", "s2", ""],
        }
    )
    groups = recording_groups(recordings)
    assert groups.tolist() == ["a", "a", "a", "d"]  # bird1 links s1-s2, s2 links bird2


def test_same_individual_name_in_two_datasets_is_two_groups():
    recordings = pd.DataFrame(
        {"recording_id": ["a", "b"], "dataset": ["x", "y"], "individual": ["bird0", "bird0"]}
    )
    assert recording_groups(recordings).nunique() == 2


def test_group_kfold_covers_everything_without_leaks():
    recordings = table(120)
    folds = group_kfold(recordings, 5, seed=1)
    assert set(folds) == set(range(5))
    assert_no_leak(recordings, folds)


def test_bad_arguments_fail_early():
    recordings = table(10)
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(recordings, {"train": 0.5, "test": 0.4})
    with pytest.raises(ValueError, match="n_folds"):
        group_kfold(recordings, 1)
    with pytest.raises(ValueError, match="at least 50 groups"):
        group_kfold(recordings, 50)
