"""Pictures: crowded pages keep their numbers apart, numbers stay inside the plot, and the pages
beyond ``max_pages`` are reported by ``biomae annotate``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import soundfile as sf

from biomae.annotate import AnnotateConfig, annotate
from biomae.annotations import make_events
from biomae.detectors.energy import EnergyDetector
from biomae.viz import events_figure, label_rows


def _label_boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = [t for t in ax.texts if t.get_visible()]
    return ax.get_window_extent(renderer), [t.get_window_extent(renderer) for t in texts]


def test_crowded_page_numbers_do_not_overlap():
    import matplotlib.pyplot as plt

    sample_rate = 8000
    audio = np.random.default_rng(0).standard_normal(30 * sample_rate).astype(np.float32)
    starts = np.linspace(0.1, 29.5, 150)
    events = make_events(
        [{"start_s": s, "end_s": s + 0.1, "label": "call"} for s in starts], recording="r"
    )
    fig = events_figure(audio, sample_rate, events, numbers=list(range(1, 151)), title="t")
    _, boxes = _label_boxes(fig)
    assert len(boxes) >= 60  # most numbers are drawn
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    hidden = 150 - len(boxes)
    assert (f"({hidden} numbers not shown" in fig.axes[0].get_title()) == (hidden > 0)
    plt.close(fig)


def test_numbers_of_events_running_off_the_page_stay_inside_the_plot():
    import matplotlib.pyplot as plt

    sample_rate = 8000
    audio = np.zeros(10 * sample_rate, dtype=np.float32)
    events = make_events(
        [{"start_s": 28.0, "end_s": 31.0}, {"start_s": 39.0, "end_s": 45.0}], recording="r"
    )
    fig = events_figure(audio, sample_rate, events, offset_s=30.0)
    axes_box, boxes = _label_boxes(fig)
    assert len(boxes) == 2
    for box in boxes:
        assert axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1
    assert all(t.get_clip_on() for t in fig.axes[0].texts)
    plt.close(fig)


def test_label_rows_stagger_then_leave_out():
    assert label_rows([0.0, 1.0, 2.0], [0.5, 0.5, 0.5]) == [0, 0, 0]
    assert label_rows([0.0, 0.1, 0.2], [0.5, 0.5, 0.5], max_rows=2) == [0, 1, None]


def test_pages_beyond_max_pages_are_reported(tmp_path):
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "long.wav", np.zeros(8000 * 5, dtype=np.float32), 8000)
    config = AnnotateConfig(plots=True, page_s=1.0, max_pages=2, progress=False)
    summary = annotate([tmp_path / "in"], tmp_path / "out", EnergyDetector(), config)
    assert summary.loc[0, "warning"].startswith("pictures cover the first 2 of 5 pages")
    pictures = sorted(p.name for p in (tmp_path / "out" / "in").glob("*.png"))
    assert pictures == ["long.page001.png", "long.page002.png"]
    assert pd.read_csv(tmp_path / "out" / "summary.csv")["warning"].notna().all()
