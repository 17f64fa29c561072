"""Hard negatives and catalog backgrounds in the synthesizer: negative soundscapes hold no call and
an empty table, the others still list exactly the calls placed (at SNRs below 0 dB too), and
backgrounds come from the catalog by role."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.annotations import read_annotations, validate_events
from biomae.cli import main
from biomae.datasets.catalog import Catalog
from biomae.datasets.synth import (
    NEGATIVE_KINDS,
    Snippet,
    SynthConfig,
    hard_negative,
    synthesize,
)
from biomae.datasets.synth.sources import catalog_backgrounds

RATE = 8000


def tone_snippet(label: str, frequency_hz: float, n_samples: int) -> Snippet:
    """A tone call whose sound is exactly its event."""
    t = np.arange(n_samples) / RATE
    envelope = np.hanning(n_samples + 2)[1:-1]
    audio = (0.5 * np.sin(2 * np.pi * frequency_hz * t) * envelope).astype(np.float32)
    return Snippet(audio=audio, event_offset_s=0.0, event_duration_s=n_samples / RATE, label=label)


SNIPPETS = [tone_snippet("a", 1000.0, 800), tone_snippet("b", 2500.0, 400)]


@pytest.mark.parametrize("kind", NEGATIVE_KINDS)
def test_each_hard_negative_kind_is_finite_bounded_and_reproducible(kind):
    audio, got = hard_negative(RATE * 2, RATE, np.random.default_rng(1), kind=kind)
    again, _ = hard_negative(RATE * 2, RATE, np.random.default_rng(1), kind=kind)
    assert got == kind and audio.dtype == np.float32 and len(audio) == RATE * 2
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 0.99
    assert np.array_equal(audio, again)
    assert np.any(audio)


@pytest.mark.parametrize("seed", range(5))
def test_noise_levels_span_minus_80_to_minus_10_dbfs(seed):
    rng = np.random.default_rng(seed)
    for kind in ("white", "pink", "brown"):
        audio, _ = hard_negative(RATE, RATE, rng, kind=kind)
        rms_db = 20 * np.log10(np.std(audio.astype(np.float64)))
        assert -80.5 <= rms_db <= -9.5


def test_unknown_kind_fails_naming_the_kinds():
    with pytest.raises(ValueError, match="rain"):
        hard_negative(100, RATE, np.random.default_rng(0), kind="thunder")


@pytest.mark.parametrize("seed", range(8))
def test_negative_soundscapes_are_empty_and_the_others_exact(seed):
    config = SynthConfig(
        duration_s=3.0, sample_rate=RATE, density_per_min=120, overlap=0.0, negative_prob=0.5,
        snr_db=(-10.0, -1.0),
    )  # fmt: skip
    audio, events = synthesize(config, SNIPPETS, [], np.random.default_rng(seed))
    validate_events(events, sample_rate=RATE, duration_s=3.0)
    info = events.attrs["synth"]
    if info["negative"]:
        assert info["negative"] in NEGATIVE_KINDS and len(events) == 0 and np.any(audio)
    else:
        assert len(events) == info["n_placed"]
        assert (events["snr_db"] < 0).all()  # calls below the noise are listed too
        sounding = np.zeros(len(audio), dtype=bool)
        for row in events.itertuples():
            sounding[round(row.start_s * RATE) : round(row.end_s * RATE)] = True
        assert not np.any(audio[~sounding])  # silent background: sound only where listed


def test_negative_prob_is_checked():
    with pytest.raises(ValueError, match="negative_prob"):
        SynthConfig(negative_prob=1.5)


def _catalog_with_roles(tmp_path) -> str:
    rng = np.random.default_rng(0)
    paths, roles = [], ["background", "negative", "calls", "negative"]
    for i, role in enumerate(roles):
        path = tmp_path / f"{role}_{i}.wav"
        length = RATE // 10 if i == 3 else RATE * 2  # the last is too short to crossfade
        sf.write(path, 0.01 * rng.standard_normal(length), RATE)
        paths.append(str(path))
    recordings = pd.DataFrame({"path": paths, "role": roles})
    catalog = tmp_path / "catalog"
    Catalog(catalog).add("bg", recordings, pd.DataFrame(columns=["recording", "start_s", "end_s"]))
    return str(catalog)


def test_backgrounds_are_chosen_from_the_catalog_by_role(tmp_path):
    catalog = _catalog_with_roles(tmp_path)
    chosen = catalog_backgrounds(catalog, ("background", "negative"), min_s=0.25)
    assert [p.name for p in chosen] == ["background_0.wav", "negative_1.wav"]
    with pytest.raises(FileNotFoundError, match="roles there"):
        catalog_backgrounds(catalog, ("rain",), min_s=0.25)


def test_cli_mixes_catalog_backgrounds_and_hard_negatives(tmp_path, capsys):
    catalog = _catalog_with_roles(tmp_path)
    out = tmp_path / "synth"
    code = main(["data", "synth", "--procedural", "20", "--background-catalog", catalog,
                 "--negatives", "0.5", "--n", "6", "--duration-s", "2", "--sample-rate",
                 str(RATE), "--out", str(out), "--seed", "3"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(p.rsplit("/", 1)[-1] for p in manifest["backgrounds"]) == [
        "background_0.wav",
        "negative_1.wav",
    ]
    negatives = [f for f in manifest["files"] if f["negative"]]
    assert 0 < len(negatives) < 6
    for entry in manifest["files"]:
        table = read_annotations(out / entry["audio"].replace(".flac", ".csv"), "csv")
        assert len(table) == entry["n_placed"]
        if entry["negative"]:
            assert len(table) == 0
    assert f"({len(negatives)} hard negatives)" in capsys.readouterr().out


def test_boundaries_only_skips_whole_clip_labels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    t = np.arange(RATE) / RATE
    paths = []
    for name in ("derived", "clip"):
        audio = 0.001 * rng.standard_normal(RATE) + 0.3 * np.sin(2 * np.pi * 1000 * t) * (
            (t > 0.4) & (t < 0.6)
        )
        paths.append(str(tmp_path / f"{name}.wav"))
        sf.write(paths[-1], audio, RATE)
    recordings = pd.DataFrame(
        {"path": paths, "annotation": ["full", "clip"], "label": ["tone", "tone"]}
    )
    events = pd.DataFrame(
        {"recording": paths, "start_s": [0.4, 0.0], "end_s": [0.6, 1.0], "label": "tone"}
    )
    catalog = tmp_path / "catalog"
    Catalog(catalog).add("d", recordings, events)
    out = tmp_path / "synth"
    args = ["data", "synth", "--catalog", str(catalog), "--n", "2", "--duration-s", "3",
            "--sample-rate", str(RATE), "--out", str(out)]  # fmt: skip
    assert main([*args, "--boundaries-only"]) == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["snippets_per_label"] == {"tone": 1}
    for entry in manifest["files"]:
        table = read_annotations(out / entry["audio"].replace(".flac", ".csv"), "csv")
        assert np.allclose(table["end_s"] - table["start_s"], 0.2)
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["snippets_per_label"] == {"tone": 2}
