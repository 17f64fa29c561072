"""Canonical Parquet: exact round trip, schema checks on read."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given

from annotations.helpers import ROUND_TRIP, assert_same_events, event_tables
from biomae.annotations import read_annotations, tabular_parquet, write_annotations
from biomae.annotations.schema import EventTableError


@ROUND_TRIP
@given(events=event_tables(max_rows=8, recordings=3))
def test_round_trip(tmp_path, events):
    path = tmp_path / "events.parquet"
    write_annotations(events, path, "parquet")
    back = read_annotations(path, "parquet")
    assert_same_events(back, events)
    assert back["channel"].dtype == "int64" and back["start_s"].dtype == "float64"


def test_bad_rows_raise_or_are_skipped(tmp_path):
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"start_s": [0.0, 2.0, 1.0], "end_s": [1.0, 1.0, 1.5]}).to_parquet(path)
    with pytest.raises(EventTableError, match=r"bad\.parquet:2: end_s is before start_s"):
        tabular_parquet.read(path)
    with pytest.warns(UserWarning, match="skipped 1"):
        events = tabular_parquet.read(path, lenient=True)
    assert list(events["start_s"]) == [0.0, 1.0]
    pd.DataFrame({"onset": [0.0]}).to_parquet(path)
    with pytest.raises(EventTableError, match="lacks column"):
        tabular_parquet.read(path)
