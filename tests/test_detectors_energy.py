"""The energy detector: exact timing on synthetic calls, ultrasonic rates,
streaming == in-memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.annotations import validate_events
from biomae.detectors.energy import EnergyDetector, EnergyDetectorConfig
from biomae.detectors.postprocess import PostProcess


def _calls(sample_rate, duration_s, calls, noise=0.003, seed=0):
    """Noise plus tone bursts; calls = [(start_s, end_s, freq_hz, amplitude)] (with 2-ms ramps)."""
    rng = np.random.default_rng(seed)
    n = round(duration_s * sample_rate)
    audio = noise * rng.standard_normal(n)
    for start_s, end_s, freq_hz, amp in calls:
        a, b = round(start_s * sample_rate), round(end_s * sample_rate)
        t = np.arange(b - a) / sample_rate
        ramp = np.minimum(1, np.minimum(t, t[::-1]) / 0.002)
        audio[a:b] += amp * ramp * np.sin(2 * np.pi * freq_hz * t)
    return audio.astype(np.float32)


CALLS_32K = [(1.0, 1.3, 3000, 0.1), (2.5, 2.6, 6000, 0.05), (4.0, 5.2, 9000, 0.08)]


def test_finds_tone_bursts_with_exact_boundaries_and_boxes():
    events = EnergyDetector().detect(_calls(32000, 6.0, CALLS_32K), 32000, "synthetic")
    validate_events(events, sample_rate=32000, duration_s=6.0)
    assert len(events) == len(CALLS_32K)
    for (_, row), (start_s, end_s, freq_hz, _) in zip(events.iterrows(), CALLS_32K, strict=True):
        assert row["start_s"] == pytest.approx(start_s, abs=0.02)
        assert row["end_s"] == pytest.approx(end_s, abs=0.02)
        assert row["low_hz"] <= freq_hz <= row["high_hz"]
        assert row["high_hz"] - row["low_hz"] < 1000  # a tone's box is narrow
        assert 0 < row["score"] < 1
    assert set(events["source"]) == {"biomae-energy"}


def test_silence_and_stationary_noise_give_no_events():
    rng = np.random.default_rng(1)
    assert len(EnergyDetector().detect(np.zeros(32000 * 3, np.float32), 32000)) == 0
    noise = (0.01 * rng.standard_normal(32000 * 20)).astype(np.float32)
    assert len(EnergyDetector().detect(noise, 32000)) == 0


def test_min_duration_and_merge_gap():
    calls = [(1.0, 1.01, 4000, 0.1), (2.0, 2.2, 4000, 0.1), (2.23, 2.4, 4000, 0.1)]
    audio = _calls(32000, 4.0, calls)
    events = EnergyDetector(
        EnergyDetectorConfig(post=PostProcess(min_duration_s=0.05, merge_gap_s=0.05))
    ).detect(audio, 32000)
    assert len(events) == 1  # the 10-ms blip is dropped, the two halves merged
    assert events.iloc[0]["start_s"] == pytest.approx(2.0, abs=0.02)
    assert events.iloc[0]["end_s"] == pytest.approx(2.4, abs=0.02)
    apart = EnergyDetector(
        EnergyDetectorConfig(post=PostProcess(min_duration_s=0.05, merge_gap_s=0.0))
    ).detect(audio, 32000)
    assert len(apart) == 2


@pytest.mark.parametrize("sample_rate", [2000, 8000, 44100, 96000, 256000, 312500])
def test_any_sample_rate(sample_rate):
    nyquist = sample_rate / 2
    if sample_rate > 100_000:  # bat-like: 5-ms calls at 45 kHz
        calls = [(0.1, 0.105, 45000, 0.1), (0.3, 0.306, 45000, 0.1)]
        duration_s = 0.5
    else:
        calls = [(0.5, 0.8, nyquist * 0.4, 0.1)]
        duration_s = 1.5
    events = EnergyDetector().detect(_calls(sample_rate, duration_s, calls), sample_rate)
    validate_events(events, sample_rate=sample_rate, duration_s=duration_s)
    assert len(events) == len(calls)
    for (_, row), (start_s, end_s, freq_hz, _) in zip(events.iterrows(), calls, strict=True):
        tolerance_s = 0.002 if sample_rate > 100_000 else 0.03
        assert row["start_s"] == pytest.approx(start_s, abs=tolerance_s)
        assert row["end_s"] == pytest.approx(end_s, abs=tolerance_s)
        assert row["low_hz"] <= freq_hz <= row["high_hz"]


def test_band_outside_nyquist_is_an_error():
    with pytest.raises(ValueError, match="Nyquist"):
        EnergyDetector(EnergyDetectorConfig(post=PostProcess(low_hz=20000))).detect(
            np.zeros(100, np.float32), 8000
        )
    with pytest.raises(ValueError, match="off_db"):
        EnergyDetectorConfig(on_db=3, off_db=6)


def test_streaming_matches_in_memory(tmp_path):
    sample_rate = 8000
    rng = np.random.default_rng(3)
    starts = np.sort(rng.uniform(0, 290, 40))
    calls = [(s, s + rng.uniform(0.05, 0.5), rng.uniform(500, 3500), 0.08) for s in starts]
    audio = _calls(sample_rate, 300.0, calls, seed=4)
    path = tmp_path / "long.flac"
    sf.write(path, audio, sample_rate)
    config = EnergyDetectorConfig(block_s=20.0, noise_window_s=5.0)
    streamed = EnergyDetector(config).detect_file(path, recording="long")
    whole = EnergyDetector(config).detect(sf.read(path, dtype="float32")[0], sample_rate, "long")
    assert len(streamed) == len(whole) >= 30
    cols = ["start_s", "end_s"]
    np.testing.assert_allclose(streamed[cols].to_numpy(), whole[cols].to_numpy(), atol=0.011)


def test_real_recordings_at_several_rates(shared_data):
    files = pd.read_csv(shared_data / "index" / "files.csv")
    picked = []
    for rate in (2000, 22050, 32000, 48000, 192000, 312500):
        rows = files[(files["sr"] == rate) & (files["duration_s"] < 70)]
        if len(rows):
            picked.append(rows.iloc[0])
    assert len(picked) >= 4
    for row in picked:
        path = shared_data / row["file"]
        events = EnergyDetector().detect_file(path)
        validate_events(events, sample_rate=int(row["sr"]), duration_s=float(row["duration_s"]))
        assert (events["recording"] == str(path)).all()


def test_real_finch_song_is_found(shared_data):
    """Bengalese finch syllables (bfsongrepo, CC-BY-4.0): most annotated syllables overlap a
    detection."""
    events_index = pd.read_csv(shared_data / "index" / "events.csv")
    ref = events_index[events_index["source"] == "bfsongrepo"]
    file = ref["file"].iloc[0]
    ref = ref[ref["file"] == file]
    found = EnergyDetector().detect_file(shared_data / file)
    hits = sum(
        ((found["start_s"] < r.offset_s) & (found["end_s"] > r.onset_s)).any()
        for r in ref.itertuples()
    )
    assert hits / len(ref) > 0.8


def test_denoise_recovers_calls_buried_in_stationary_noise():
    calls = [(1.0, 1.4, 3000, 0.05), (3.0, 3.3, 5000, 0.05)]
    audio = _calls(32000, 5.0, calls, noise=0.02, seed=5)
    plain = EnergyDetector().detect(audio, 32000)
    denoised = EnergyDetector(EnergyDetectorConfig(denoise=True)).detect(audio, 32000)
    assert len(denoised) == 2
    for (_, row), (start_s, _end_s, freq_hz, _) in zip(denoised.iterrows(), calls, strict=True):
        assert row["start_s"] == pytest.approx(start_s, abs=0.03)
        assert row["low_hz"] <= freq_hz <= row["high_hz"]
    # in the raw audio the band SNR (~5 dB) stays below on_db: only denoising recovers the calls
    assert len(plain) == 0
