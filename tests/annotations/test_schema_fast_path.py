"""make_events of a table that is already canonical returns what the full conversion gives."""

from __future__ import annotations

import pandas as pd

from biomae.annotations.schema import make_events


def test_a_canonical_table_comes_back_as_the_conversions_would_make_it():
    rows = [
        {"start_s": 0.1, "end_s": 0.5, "label": "a", "score": 0.9, "recording": "r.wav"},
        {"start_s": 1.0, "end_s": 1.25, "low_hz": 500.0, "high_hz": 900.0, "label": "b"},
    ]
    table = make_events(rows, source="biomae")
    again = make_events(table)  # already canonical: no conversion
    pd.testing.assert_frame_equal(again, table)
    assert again is not table and again["label"].dtype == object
    slow = make_events(table.assign(channel=table["channel"].astype(float)))  # converted again
    pd.testing.assert_frame_equal(again, slow)
    # a table that only looks canonical is still converted: non-str labels, a shifted index
    odd = table.assign(label=[1, 2], taxon=[None, "Parus major"])
    assert list(make_events(odd)["label"]) == ["1", "2"]
    assert list(make_events(odd)["taxon"]) == ["", "Parus major"]
    shifted = make_events(table.set_axis([5, 6]))
    assert list(shifted.index) == [0, 1]
