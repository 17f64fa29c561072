"""map_events: a wrapping detector reworks each recording's events; errors stay per recording."""

import pandas as pd

from biomae.detectors.wrapping import map_events


class Inner:
    def detect_many(self, paths, infos=None):
        for path in paths:
            yield path, (ValueError(f"{path}: unreadable") if path == "bad" else pd.DataFrame())


def test_map_events_reworks_each_recording_and_keeps_errors_per_recording():
    def rework(path, events, info):
        if path == "breaks":
            raise RuntimeError("rework failed")
        return events.assign(seen=[]).rename_axis(path)

    out = dict(map_events(Inner(), ["a", "bad", "breaks", "c"], None, rework))
    assert list(out) == ["a", "bad", "breaks", "c"]
    assert isinstance(out["bad"], ValueError) and "unreadable" in str(out["bad"])
    assert isinstance(out["breaks"], RuntimeError)
    assert list(out["a"].columns) == ["seen"] and out["c"].index.name == "c"
