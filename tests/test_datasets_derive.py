"""Call boundaries derived inside clean clips: found within a tolerance on clips with known calls,
nothing on noise-only or filled clips, and flagged ``derived`` in the catalog."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.cli import main
from biomae.datasets.catalog import Catalog
from biomae.datasets.derive import DeriveConfig, derive_events

RATE = 16000
CALLS_S = [(0.5, 0.8), (1.4, 1.6), (2.2, 2.9)]
TOLERANCE_S = 0.03


def clip(calls_s, snr_db: float = 30.0, duration_s: float = 3.5, seed: int = 0) -> np.ndarray:
    """White noise at -50 dBFS RMS with 2-kHz tone calls ``snr_db`` above it."""
    rng = np.random.default_rng(seed)
    noise_rms = 10 ** (-50 / 20)
    audio = noise_rms * rng.standard_normal(round(duration_s * RATE))
    t = np.arange(len(audio)) / RATE
    amplitude = noise_rms * 10 ** (snr_db / 20) * np.sqrt(2)
    for start_s, end_s in calls_s:
        inside = (t >= start_s) & (t < end_s)
        audio[inside] += amplitude * np.sin(2 * np.pi * 2000 * t[inside])
    return audio.astype(np.float32)


def test_known_calls_are_found_within_tolerance():
    events, reason = derive_events(clip(CALLS_S), RATE, label="tone")
    assert reason == "clean"
    assert len(events) == len(CALLS_S)
    found = events[["start_s", "end_s"]].to_numpy()
    assert np.abs(found - np.array(CALLS_S)).max() <= TOLERANCE_S
    assert (events["label"] == "tone").all()
    assert events["note"].str.startswith("derived").all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_only_clip_gives_nothing(seed):
    events, reason = derive_events(clip([], seed=seed), RATE, label="tone")
    assert len(events) == 0 and reason == "no call"


def test_calls_below_the_threshold_give_nothing():
    events, reason = derive_events(clip(CALLS_S, snr_db=3.0), RATE, DeriveConfig(min_snr_db=10))
    assert len(events) == 0 and reason == "no call"


def test_a_call_that_fills_the_clip_is_not_clean():
    events, reason = derive_events(clip([(0.05, 3.45)]), RATE, label="tone")
    assert len(events) == 0 and reason.startswith("fills clip")


def test_a_loud_unlabelled_sound_below_the_threshold_makes_the_clip_unclean():
    audio = clip(CALLS_S[:1])
    t = np.arange(len(audio)) / RATE
    rng = np.random.default_rng(5)
    hum = (t > 1.5) & (t < 3.0)  # ~6 dB of broadband rumble: above the floor, below the call
    audio[hum] += (10 ** (-50 / 20) * 1.7 * rng.standard_normal(hum.sum())).astype(np.float32)
    events, reason = derive_events(audio, RATE, DeriveConfig(min_snr_db=10, max_residual_db=4))
    assert len(events) == 0 and reason.startswith("unsteady floor")


def test_derive_command_replaces_clip_labels_in_clean_clips_and_flags_them(tmp_path, capsys):
    paths = [tmp_path / "a.wav", tmp_path / "noise.wav"]
    sf.write(paths[0], clip(CALLS_S), RATE)
    sf.write(paths[1], clip([], seed=3), RATE)
    recordings = pd.DataFrame(
        {"path": [str(p) for p in paths], "annotation": "clip", "label": ["tone", "tone"]}
    )
    events = pd.DataFrame(
        {"recording": [str(p) for p in paths], "start_s": 0.0, "end_s": 3.5, "label": "tone"}
    )
    catalog_dir = tmp_path / "catalog"
    Catalog(catalog_dir).add("clips", recordings, events)
    assert main(["data", "derive", "--catalog", str(catalog_dir)]) == 0
    assert "1 clean clip(s), 3 derived event(s)" in capsys.readouterr().out
    catalog = Catalog(catalog_dir)
    derived = catalog.query("SELECT * FROM events WHERE note LIKE 'derived%' ORDER BY start_s")
    assert len(derived) == 3 and (derived["recording"] == str(paths[0])).all()
    assert np.abs(derived[["start_s", "end_s"]].to_numpy() - CALLS_S).max() <= TOLERANCE_S
    kept = catalog.events()
    assert len(kept[kept["recording"] == str(paths[1])]) == 1  # the noise clip keeps its label
    status = catalog.recordings().set_index("path")["annotation"]
    assert status[str(paths[0])] == "full" and status[str(paths[1])] == "clip"


def test_derive_on_a_missing_catalog_fails_with_one_line(tmp_path, capsys):
    assert main(["data", "derive", "--catalog", str(tmp_path / "none")]) == 2
    assert "no catalog here" in capsys.readouterr().err
