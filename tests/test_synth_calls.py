"""Tests for biomae.datasets.synth.calls: procedural calls keep exact times and bands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biomae.datasets.synth import SynthConfig, write_soundscapes
from biomae.datasets.synth.calls import KINDS, noise_background, procedural_snippets

RATE = 32_000


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_has_an_exact_event_and_band(kind):
    snippets = procedural_snippets(12, RATE, np.random.default_rng(0), kinds=(kind,))
    for s in snippets:
        first = round(s.event_offset_s * RATE)
        last = first + round(s.event_duration_s * RATE)
        assert s.label == kind and s.taxon == "procedural"
        # silence outside the event, sound at both of its ends
        assert not np.any(s.audio[:first]) and not np.any(s.audio[last:])
        assert s.audio[first] != 0 and s.audio[last - 1] != 0
        event = s.audio[first:last].astype(np.float64)
        assert np.sqrt(np.mean(event**2)) == pytest.approx(1.0, rel=1e-3)
        # nearly all the power lies inside the stated band (leakage of the envelope aside)
        power = np.abs(np.fft.rfft(event * np.hanning(len(event)))) ** 2
        freqs = np.fft.rfftfreq(len(event), 1 / RATE)
        slack = 4 * RATE / len(event) + 50  # a few bins of spectral leakage
        inside = (freqs >= s.low_hz - slack) & (freqs <= s.high_hz + slack)
        assert power[inside].sum() / power.sum() > 0.95, (kind, s.low_hz, s.high_hz)
        assert 0 < s.low_hz < s.high_hz <= 0.45 * RATE


def test_generation_is_reproducible_and_checks_its_arguments():
    a = procedural_snippets(5, RATE, np.random.default_rng(3))
    b = procedural_snippets(5, RATE, np.random.default_rng(3))
    assert all(np.array_equal(x.audio, y.audio) for x, y in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="unknown kinds"):
        procedural_snippets(1, RATE, np.random.default_rng(0), kinds=("howl",))
    with pytest.raises(ValueError, match="no room"):
        procedural_snippets(1, 2000, np.random.default_rng(0))


def test_noise_background_is_quiet_finite_noise():
    audio = noise_background(RATE * 2, RATE, np.random.default_rng(1))
    assert audio.dtype == np.float32 and audio.shape == (RATE * 2,)
    assert np.isfinite(audio).all()
    rms_db = 20 * np.log10(np.std(audio))
    assert -51 < rms_db < -24


def test_soundscapes_from_procedural_calls_alone(tmp_path):
    config = SynthConfig(
        duration_s=8.0, density_per_min=30.0, procedural_calls=20, noise_background_prob=1.0
    )
    manifest = write_soundscapes(config, tmp_path, n=2, seed=0)
    assert manifest.exists()
    tables = [pd.read_csv(p) for p in sorted(tmp_path.glob("soundscape_*.csv"))]
    events = pd.concat(tables)
    assert len(events) > 0 and set(events["label"]) <= set(KINDS)
    assert (events["source"] == "synth").all() and events["low_hz"].notna().all()
    # the background is generated noise, so the placed calls stand out of it
    import soundfile as sf

    audio, rate = sf.read(tmp_path / "soundscape_0000.flac")
    assert rate == 32_000 and len(audio) == 8 * 32_000 and np.std(audio) > 0


def test_procedural_config_is_validated():
    with pytest.raises(ValueError, match="procedural_calls"):
        SynthConfig(procedural_calls=-1)
    with pytest.raises(ValueError, match="noise_background_prob"):
        SynthConfig(noise_background_prob=1.5)
    with pytest.raises(ValueError, match="procedural_calls > 0"):
        write_soundscapes(SynthConfig(), "unused", n=1, seed=0)


def test_cli_synth_with_procedural_calls(tmp_path, capsys):
    from biomae.cli import main

    out = tmp_path / "synth"
    argv = ["data", "synth", "--procedural", "10", "--noise-backgrounds", "1"]
    assert main([*argv, "--out", str(out), "--n", "1", "--duration-s", "5"]) == 0
    assert (out / "soundscape_0000.selections.txt").exists()
    assert main(["data", "synth", "--out", str(out)]) == 2
    assert "--procedural" in capsys.readouterr().err
