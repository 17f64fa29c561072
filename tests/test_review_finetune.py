"""Training on a review: `biomae finetune --data OUT` uses the fully reviewed recordings of a
`biomae annotate` folder: accepted (corrected) and drawn calls as positives, rejected detections as
hard negatives; recordings with an unreviewed detection are left out."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from biomae.cli import main
from biomae.review.store import ReviewStore
from biomae.train.finetune_data import LabeledWindows, find_labeled, review_labeled


@pytest.fixture
def run_dir(example_path, tmp_path):
    """Three copies of the bundled example annotated with the energy detector (11 events each)."""
    recordings = tmp_path / "site"
    recordings.mkdir()
    for name in ("a", "b", "c"):
        shutil.copy(example_path, recordings / f"{name}.flac")
    out = tmp_path / "out"
    assert main(["annotate", str(recordings), "--out", str(out), "--detector", "energy"]) == 0
    return out


def review_all(store: ReviewStore, key: str) -> None:
    """Reject detections 1 and 4, move the end of 2, relabel 3, accept the rest, draw a call."""
    for i in range(len(store.table[store.table["key"] == key])):
        event_id = f"{key}:{i}"
        if i in (1, 4):
            store.decide(event_id, "rejected")
        elif i == 2:
            store.decide(event_id, end_s=store.event(event_id)["end_s"] + 0.05)
        elif i == 3:
            store.decide(event_id, label="trill")
        else:
            store.decide(event_id, "accepted")
    store.add(key, start_s=9.5, end_s=9.7, low_hz=1000, high_hz=3000, label="missed")


def test_nothing_reviewed_is_refused_with_the_fix(run_dir):
    with pytest.raises(ValueError, match="no fully reviewed recording.*biomae review"):
        find_labeled(run_dir)


def test_fully_reviewed_recordings_give_positives_and_hard_negatives(run_dir):
    store = ReviewStore(run_dir)
    review_all(store, "site/a")
    review_all(store, "site/b")
    store.decide("site/c:0", "accepted")  # site/c: only partly reviewed
    detected = store.table[store.table["key"] == "site/a"]

    items, left_out = review_labeled(run_dir)
    assert [item.name for item in items] == ["site/a", "site/b"] and left_out == ["site/c"]
    a = items[0]
    assert len(a.events) == 11 - 2 + 1  # rejected dropped, the drawn call added
    assert "trill" in set(a.events["label"]) and "missed" in set(a.events["label"])
    moved = detected.loc["site/a:2"]
    assert moved["end_s"] in set(a.events["end_s"]) and moved["orig_end_s"] != moved["end_s"]
    rejected = detected.loc[["site/a:1", "site/a:4"]]
    assert a.negatives == tuple(zip(rejected["orig_start_s"], rejected["orig_end_s"], strict=True))
    assert set(a.events["recording"]) == {"site/a"}
    assert [item.name for item in find_labeled(run_dir)] == ["site/a", "site/b"]


def test_windows_are_placed_on_hard_negatives(run_dir):
    store = ReviewStore(run_dir)
    review_all(store, "site/a")
    review_all(store, "site/b")
    items, _ = review_labeled(run_dir)
    rate, n_samples = 16000, 16000
    windows = LabeledWindows(items, n_samples, rate, batch_size=32, seed=0, positive_fraction=0.0)
    centres = {(s + e) / 2 for item in items for s, e in item.negatives}
    offsets = [o for k in range(4) for o in windows.batch(k)["offsets_s"]]
    on_negatives = [o for o in offsets if any(abs(o + 0.5 - c) < 1e-3 for c in centres)]
    assert 0.3 < len(on_negatives) / len(offsets) < 0.7  # half the non-event windows
    without = [type(item)(item.recording, item.events, item.name) for item in items]
    plain = LabeledWindows(without, n_samples, rate, batch_size=32, seed=0, positive_fraction=0.0)
    assert not np.array_equal(plain.batch(0)["audio"].numpy(), windows.batch(0)["audio"].numpy())


def test_finetune_on_a_reviewed_folder(run_dir, tmp_path, capsys):
    store = ReviewStore(run_dir)
    review_all(store, "site/a")
    review_all(store, "site/b")
    toml = tmp_path / "ft.toml"
    toml.write_text(
        '[model]\npreset = "tiny"\noverrides = {"encoder.n_mels" = 64, "encoder.depth" = 1}\n'
        "[front_end]\nsample_rate = 16000\nn_fft = 512\nn_mels = 64\n"
        "[data]\nwindow_s = 1.28\nbatch_size = 4\nval_fraction = 0.5\n"
        "[optim]\nmax_steps = 1\nwarmup_steps = 1\n"
    )
    out = tmp_path / "ft"
    argv = ["finetune", "--config", str(toml), "--init", "none", "--data", str(run_dir)]
    assert main([*argv, "--out", str(out)]) == 0
    assert (out / "best.safetensors").is_file()
    printed = capsys.readouterr().out
    assert "1 recording(s)" in printed and "not fully reviewed, left out, e.g. site/c" in printed
    assert "1 train / 1 validation recordings" in printed
