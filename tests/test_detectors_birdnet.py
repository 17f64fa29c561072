"""The BirdNET peer detector: its 3-s window rows become class-agnostic events."""

from __future__ import annotations

import pandas as pd
import pytest

from biomae.detectors.birdnet import merge_windows


def test_birdnet_windows_merge_into_class_agnostic_events():
    rows = pd.DataFrame(
        {
            "input": ["a.wav"] * 5 + ["b.wav"],
            "start_time": [0.0, 0.0, 3.0, 9.0, 12.0, 6.0],
            "end_time": [3.0, 3.0, 6.0, 12.0, 15.0, 9.0],
            "species_name": ["x", "y", "x", "z", "z", "x"],
            "confidence": [0.5, 0.9, 0.3, 0.05, 0.6, 0.2],
        }
    )
    events = merge_windows(rows, threshold=0.1)
    got = events[["recording", "start_s", "end_s", "score"]].to_numpy().tolist()
    # a.wav: 0-3 (two species) and 3-6 touch -> one event; 9-12 is below threshold; 12-15 alone
    assert got == [["a.wav", 0.0, 6.0, 0.9], ["a.wav", 12.0, 15.0, 0.6], ["b.wav", 6.0, 9.0, 0.2]]
    assert set(events["label"]) == {"call"}
    assert len(merge_windows(rows, threshold=0.95)) == 0
    with pytest.raises(ValueError, match="threshold"):
        merge_windows(rows, threshold=1.5)
