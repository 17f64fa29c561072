"""Praat TextGrids: long and short formats, UTF-16, tier choice, gaps, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotations.helpers import ROUND_TRIP, assert_same_events
from biomae.annotations import read_annotations, textgrid, write_annotations
from biomae.annotations.schema import EventTableError, make_events

SHORT = """File type = "ooTextFile"
Object class = "TextGrid"

0
3.5
<exists>
2
"IntervalTier"
"syllables"
0
3.5
3
0
1.25
"a ""quoted"" b"
1.25
2
""
2
3.5
"c"
"TextTier"
"clicks"
0
3.5
1
0.7
"click"
"""


def test_short_format_with_point_tier_and_gap(tmp_path):
    path = tmp_path / "bird.TextGrid"
    path.write_text(SHORT, "utf-8")
    events = textgrid.read(path)
    assert list(events["label"]) == ['a "quoted" b', "c"]  # the empty interval is a gap
    assert list(events["start_s"]) == [0.0, 2.0] and list(events["end_s"]) == [1.25, 3.5]
    assert set(events["tier"]) == {"syllables"} and set(events["recording"]) == {"bird"}
    assert len(textgrid.read(path, tier=1)) == 2
    with pytest.raises(EventTableError, match="TextTier"):
        textgrid.read(path, tier="clicks")
    with pytest.raises(EventTableError, match="no tier 'words'"):
        textgrid.read(path, tier="words")


def test_utf16_and_long_format_agree(tmp_path):
    events = make_events(
        [
            {"start_s": 0.5, "end_s": 1.0, "label": "ä"},
            {"start_s": 1.0, "end_s": 2.0, "label": "b"},
        ],
        recording="x",
    )
    long_path = tmp_path / "x.TextGrid"
    textgrid.write(events, long_path, duration_s=3.0)
    utf16 = tmp_path / "y.TextGrid"
    utf16.write_text(SHORT, "utf-16")
    assert list(textgrid.read(utf16)["label"]) == ['a "quoted" b', "c"]
    back = textgrid.read(long_path, recording="x")
    assert_same_events(back, events.assign(source="textgrid"))
    assert "intervals: size = 4" in long_path.read_text()  # gap, a, b, tail gap


def test_structural_error_names_line_and_bad_interval(tmp_path):
    path = tmp_path / "bad.TextGrid"
    path.write_text(SHORT.replace('0\n1.25\n"a', '0\n"oops"\n"a'), "utf-8")
    with pytest.raises(EventTableError, match=r"bad\.TextGrid:14: expected interval xmax"):
        textgrid.read(path)
    path.write_text(SHORT.replace('2\n3.5\n"c"', '2\n1.5\n"c"'), "utf-8")
    with pytest.raises(EventTableError, match=r"bad\.TextGrid:19: end_s is before start_s"):
        textgrid.read(path)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(textgrid.read(path, lenient=True)) == 1


def test_writer_keeps_overlaps_empty_labels_and_instants(tmp_path):
    rows = [(0, 2, "a"), (1, 3, "b"), (1.5, 1.6, ""), (4, 4, "p")]
    table = make_events([{"start_s": s, "end_s": e, "label": x} for s, e, x in rows])
    with pytest.warns(UserWarning, match="1 empty label.*3 interval tiers; 1 zero-length"):
        textgrid.write(table, tmp_path / "o.TextGrid")
    back = textgrid.read(tmp_path / "o.TextGrid").sort_values("start_s")
    assert list(back["label"]) == ["a", "b", "?"]  # the instant is in a point tier
    assert list(back["tier"]) == ["events", "events 2", "events 3"]
    text = (tmp_path / "o.TextGrid").read_text()
    assert 'class = "TextTier"' in text and "number = 4.0" in text and 'mark = "p"' in text


@st.composite
def _tiers(draw):
    gaps = draw(st.lists(st.floats(0, 5), min_size=0, max_size=6))
    rows, cursor = [], 0.0
    for gap in gaps:
        start_s = cursor + gap
        end_s = start_s + draw(st.floats(0.001, 5))
        label = draw(st.text(st.characters(whitelist_categories=("L", "N", "P")), min_size=1))
        rows.append({"start_s": start_s, "end_s": end_s, "label": label})
        cursor = end_s
    return make_events(rows, recording="r", source="textgrid")


@ROUND_TRIP
@given(events=_tiers())
def test_round_trip(tmp_path, events):
    path = tmp_path / "r.TextGrid"
    write_annotations(events, path, "textgrid", tier_name="calls")
    back = read_annotations(path, "textgrid")
    assert_same_events(back, events)
    assert (back["tier"] == "calls").all()


def test_real_textgrids(shared_data):
    formats = shared_data / "formats/crowsetta"
    avo = textgrid.read(formats / "src/crowsetta/examples/AVO-maea-basic.TextGrid")
    assert list(avo["tier"].unique()) == ["Samoan", "Gloss"] and len(avo) == 14
    assert list(avo["label"][:2]) == ["'o", "Sione"]
    gloss = textgrid.read(formats / "src/crowsetta/examples/AVO-maea-basic.TextGrid", tier="Gloss")
    assert list(gloss["label"]) == ["PRES", "Sione", "PAST", "pull-ES", "DET", "rope", "earlier"]
    song = textgrid.read(formats / "doc/data/r6paq/b11_concat_dtw.TextGrid")
    assert len(song) == 11957 and song["start_s"].is_monotonic_increasing
    assert (song["end_s"] > song["start_s"]).all() and song["end_s"].max() <= 2187.036031
