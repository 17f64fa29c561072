"""Shared test helpers for the annotation formats: random event tables and table comparison."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from biomae.annotations.schema import EVENT_COLUMNS, make_events

# hypothesis settings for the round-trip properties (tmp_path is reused across examples: each
# example overwrites the same file)
ROUND_TRIP = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# printable text without separators or surrounding blanks (every format strips cells)
_TEXT = st.text(
    alphabet=st.characters(
        whitelist_categories=("L", "N", "P", "S"), blacklist_characters='\t\r\n"\\,'
    ),
    max_size=8,
)
_TIME = st.floats(0, 5000, allow_nan=False, allow_infinity=False)


@st.composite
def event_rows(draw, *, boxes: bool = True, scores: bool = True, recordings: int = 1):
    """A dict for :func:`make_events`: a time span, maybe a box, label, score and metadata."""
    start_s = draw(_TIME)
    end_s = start_s + draw(st.floats(0, 60, allow_nan=False))
    row = {"start_s": start_s, "end_s": end_s, "label": draw(_TEXT)}
    if boxes and draw(st.booleans()):
        low_hz = draw(st.floats(0, 20000, allow_nan=False))
        row["low_hz"], row["high_hz"] = low_hz, low_hz + draw(st.floats(0, 4000, allow_nan=False))
    if scores:
        row["score"] = draw(st.one_of(st.just(math.nan), st.floats(0, 1)))
    row["recording"] = f"rec{draw(st.integers(0, recordings - 1))}.wav"
    row["channel"] = draw(st.integers(1, 4))
    for name in ("taxon", "individual", "call_type", "source"):
        row[name] = draw(st.one_of(st.just(""), _TEXT))
    return row


def event_tables(max_rows: int = 6, **options):
    """Hypothesis strategy: canonical event tables of 0..max_rows rows."""
    return st.lists(event_rows(**options), max_size=max_rows).map(make_events)


def assert_same_events(actual: pd.DataFrame, expected: pd.DataFrame, *, rtol: float = 0.0) -> None:
    """Canonical columns equal (floats within ``rtol``, NaN == NaN), row order as given."""
    columns = list(EVENT_COLUMNS)
    assert len(actual) == len(expected), f"{len(actual)} rows != {len(expected)}"
    actual = actual.loc[:, columns].reset_index(drop=True)
    expected = expected.loc[:, columns].reset_index(drop=True)
    for name in columns:
        a, e = actual[name].to_numpy(), expected[name].to_numpy()
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * 10, err_msg=name)
        else:
            assert list(a) == list(e), name
