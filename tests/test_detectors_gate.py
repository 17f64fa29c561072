"""The noise-floor gate (biomae.detectors.gate): noise in -> no events; a call in noise -> kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.annotations.schema import make_events
from biomae.detectors import make_detector
from biomae.detectors.gate import GateConfig, GatedDetector, gate_events, measure_events
from biomae.starter import default_model

RATE = 32000


def _noise(seconds: float, level_dbfs: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(int(seconds * RATE)) * 10 ** (level_dbfs / 20)


def _tone_burst(audio: np.ndarray, start_s: float, dur_s: float, freq_hz: float, level_dbfs):
    """``audio`` with a Hann-shaped tone of ``level_dbfs`` RMS added at ``start_s``."""
    n = int(dur_s * RATE)
    t_s = np.arange(n) / RATE
    tone = np.sin(2 * np.pi * freq_hz * t_s) * np.hanning(n) * np.sqrt(2 / 0.375)
    out = audio.copy()
    first = int(start_s * RATE)
    out[first : first + n] += tone * 10 ** (level_dbfs / 20)
    return out


def _write(tmp_path, name: str, audio: np.ndarray):
    path = tmp_path / name
    sf.write(path, audio.astype(np.float32), RATE, subtype="FLOAT")
    return path


class EveryHalfSecond:
    """A detector that reports a 0.2-s call every half second, whatever it hears (what the
    starter model did in white noise)."""

    name = "stub"

    def params(self) -> dict:
        return {"detector": self.name}

    def detect_file(self, path, recording=None, info=None) -> pd.DataFrame:
        duration_s = sf.info(str(path)).duration
        starts = np.arange(0.25, duration_s - 0.5, 0.5)
        rows = [{"start_s": s, "end_s": s + 0.2, "label": "call", "score": 0.99} for s in starts]
        return make_events(rows, recording=str(recording or path))


@pytest.mark.parametrize("level_dbfs", [-80, -40, -10])
@pytest.mark.parametrize("colour", ["white", "brown"])
def test_stationary_noise_at_any_level_gives_no_events(tmp_path, level_dbfs, colour):
    from biomae.datasets.synth.negatives import coloured_noise

    alpha = {"white": 0.0, "brown": 2.0}[colour]
    audio = coloured_noise(12 * RATE, alpha, np.random.default_rng(1)) * 10 ** (level_dbfs / 20)
    path = _write(tmp_path, "noise.wav", audio)
    stub = EveryHalfSecond()
    assert len(stub.detect_file(path)) > 10  # the stub fires all over the noise
    assert len(GatedDetector(stub).detect_file(path)) == 0


def test_digital_and_dithered_silence_give_no_events(tmp_path):
    rng = np.random.default_rng(2)
    n = 8 * RATE
    for name, audio in (
        ("silence.wav", np.zeros(n)),
        ("dither.wav", (rng.random(n) - rng.random(n)) / 32768),
    ):
        path = _write(tmp_path, name, audio)
        assert len(GatedDetector(EveryHalfSecond()).detect_file(path)) == 0, name


def test_a_call_in_noise_is_kept_and_the_noise_around_it_is_not(tmp_path):
    audio = _tone_burst(_noise(12, -50), 5.25, 0.2, 3000.0, -35)  # 15 dB above the noise RMS
    path = _write(tmp_path, "call.wav", audio)
    kept = GatedDetector(EveryHalfSecond()).detect_file(path)
    assert kept["start_s"].round(2).tolist() == [5.25]


def test_gain_does_not_change_the_decision(tmp_path):
    """±30 dB of gain leaves the gate's decisions alone (above its level floor)."""
    base = _tone_burst(_noise(12, -60), 4.25, 0.2, 2000.0, -45)
    decisions = []
    for gain_db in (-30, 0, 30):
        path = _write(tmp_path, f"gain{gain_db}.wav", base * 10 ** (gain_db / 20))
        decisions.append(GatedDetector(EveryHalfSecond()).detect_file(path)["start_s"].tolist())
    assert decisions[0] == decisions[1] == decisions[2] == [pytest.approx(4.25)]


def test_a_dense_bout_does_not_raise_its_own_floor(tmp_path):
    """Calls every 0.3 s for 10 s: the floor is measured between them, so all are kept."""
    audio = _noise(12, -60)
    starts = np.arange(1.0, 11.0, 0.3)
    for start in starts:
        audio = _tone_burst(audio, start, 0.15, 2500.0, -40)
    path = _write(tmp_path, "bout.wav", audio)
    events = make_events(
        [{"start_s": s, "end_s": s + 0.15, "label": "call"} for s in starts], recording="bout"
    )
    assert len(gate_events(path, events)) == len(starts)


def test_measure_reports_snr_level_and_band(tmp_path):
    audio = _tone_burst(_noise(10, -60), 4.0, 0.3, 4000.0, -30)
    path = _write(tmp_path, "m.wav", audio)
    events = make_events([{"start_s": 4.0, "end_s": 4.3, "label": "call"}], recording="m")
    row = measure_events(path, events).iloc[0]
    assert row["snr_db"] > 25
    assert -32 < row["level_dbfs"] < -22  # -30 dBFS RMS, Hann-shaped: its loud frames more
    assert row["band_low_hz"] <= 4000 <= row["band_high_hz"]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="context_s"):
        GateConfig(context_s=0)
    with pytest.raises(ValueError, match="fallback_quantile"):
        GateConfig(fallback_quantile=1.0)


def test_the_default_detector_is_silent_in_white_noise_and_dithered_silence(tmp_path):
    """The user story of issue 16: ``biomae annotate``'s default on hiss reports no calls (the
    starter model alone reported ~27 per minute in white noise)."""
    if default_model() is None:
        pytest.skip("no packaged starter model")
    rng = np.random.default_rng(3)
    n = 20 * RATE
    detector = make_detector("auto")
    for name, audio in (
        ("white.wav", _noise(20, -40, seed=4)),
        ("dither.wav", (rng.random(n) - rng.random(n)) / 32768),
    ):
        path = _write(tmp_path, name, audio)
        assert len(detector.detect_file(path)) == 0, name
        assert "gate" in detector.params()["model"]


def test_the_default_detector_still_finds_real_finch_song(shared_data, tmp_path):
    """On a real Bengalese-finch recording the gate drops none of the model's calls, and with
    white noise added 20 dB below the song's RMS it keeps nearly all of them."""
    if default_model() is None:
        pytest.skip("no packaged starter model")
    from biomae import audio as audio_io
    from biomae.detectors.model import InferConfig, ModelDetector

    path = shared_data / "audio/crowsetta/tests/data_for_tests/birdsongrec/Bird0/Wave/114.flac"
    if not path.exists():
        pytest.skip(f"{path} not found")
    model = ModelDetector("starter", InferConfig(boxes=False))
    ungated, gated = model.detect_file(path), GatedDetector(model).detect_file(path)
    assert len(ungated) > 10
    assert len(gated) == len(ungated)
    song, rate = audio_io.load(path)
    hiss = np.random.default_rng(6).standard_normal(len(song)) * np.std(song) / 10
    noisy = tmp_path / "noisy.wav"
    sf.write(noisy, (song + hiss).astype(np.float32), rate, subtype="FLOAT")
    in_noise, gated_in_noise = model.detect_file(noisy), GatedDetector(model).detect_file(noisy)
    assert len(in_noise) > 10
    assert len(gated_in_noise) >= 0.9 * len(in_noise)


def test_events_at_the_end_of_an_odd_length_recording_are_measured(tmp_path):
    """Context spans ending at the last sample never read past it (float rounding: a real
    11,025-Hz clip of 152,834 samples once raised AudioError here)."""
    rate = 11025
    audio = np.random.default_rng(5).standard_normal(152_834) * 0.01  # 13.862494 s
    path = tmp_path / "odd.wav"
    sf.write(path, audio.astype(np.float32), rate)
    duration_s = len(audio) / rate
    for start_s in (13.86, duration_s - 0.5, duration_s - 3):  # 13.86: context from 8.86 s
        rows = [{"start_s": start_s, "end_s": duration_s, "label": "call"}]
        measured = measure_events(path, make_events(rows, recording="odd"))
        assert measured["snr_db"].notna().all(), start_s


def test_live_mode_still_runs_the_default(tmp_path):
    """``biomae annotate - --live`` with the default detector runs the starter model (the gate
    reads a file around each event, so the live stream goes ungated)."""
    if default_model() is None:
        pytest.skip("no packaged starter model")
    from biomae.live import LiveModel, live_detector

    live, name = live_detector(make_detector("auto"), 32000, "stream")
    assert isinstance(live, LiveModel) and name == "starter-model"


def test_the_gate_measures_without_importing_torch():
    """The gate wraps the default model on the ONNX path, which imports no torch: measuring
    band powers must not load it (it once did, for the mel band edges: 1.7 s of start-up)."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from biomae.detectors.gate import GateConfig, band_powers\n"
        "audio = np.random.default_rng(0).normal(0, 0.01, 32000).astype(np.float32)\n"
        "bands, hop, edges_hz = band_powers(audio, 32000, GateConfig())\n"
        "assert bands.shape[0] == len(edges_hz) > 1\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_moving_average_equals_scipy_uniform_filter(size):
    """The gate's smoothing is scipy.ndimage.uniform_filter1d (mode "nearest"), odd and even."""
    from scipy.ndimage import uniform_filter1d

    from biomae.detectors.gate import moving_average

    x = np.random.default_rng(size).random((4, 37)).astype(np.float32)
    expected = uniform_filter1d(x, size, axis=1, mode="nearest")
    np.testing.assert_allclose(moving_average(x, size), expected, rtol=1e-5, atol=1e-7)
