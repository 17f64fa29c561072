"""Labels from examples: ``biomae annotate ... --examples DIR`` (biomae.examples, biomae.spans)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.annotations import read_annotations, write_annotations
from biomae.cli import main
from biomae.embed import Embedder
from biomae.examples import ExamplesError, Labeller, find_examples
from biomae.spans import embed_spans

RATE = 16000
LOW_HZ, HIGH_HZ = 600.0, 4000.0


def _tone(freq_hz: float, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10-ms fades
    return (0.5 * ramp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32) + 0.003 * (
        rng.standard_normal(len(t)).astype(np.float32)
    )


def _recording(path, calls, seconds=6.0, seed=0):
    """A recording of faint noise with tone ``calls`` [(start_s, duration_s, freq_hz)]."""
    rng = np.random.default_rng(seed)
    audio = 0.003 * rng.standard_normal(round(seconds * RATE)).astype(np.float32)
    for k, (start_s, duration_s, freq_hz) in enumerate(calls):
        tone = _tone(freq_hz, duration_s, seed + k)
        lo = round(start_s * RATE)
        audio[lo : lo + len(tone)] = tone
    sf.write(path, audio, RATE)
    return path


def _examples(folder, n=3):
    for label, freq_hz in (("low", LOW_HZ), ("high", HIGH_HZ)):
        (folder / label).mkdir(parents=True)
        for k in range(n):
            sf.write(folder / label / f"{k}.wav", _tone(freq_hz * (1 + 0.02 * k), 0.3, k), RATE)
    return folder


@pytest.fixture
def tiny_embedder(tiny_detect_model, monkeypatch):
    """The embedding model of --examples: the tiny model (via the starter model's variable)."""
    monkeypatch.setenv("BIOMAE_STARTER_MODEL", str(tiny_detect_model))
    return tiny_detect_model


CALLS = [(0.5, 0.3, LOW_HZ), (1.5, 0.3, HIGH_HZ), (2.5, 0.3, LOW_HZ), (3.5, 0.3, HIGH_HZ)]


def _annotate(rec, out, examples, *extra) -> int:
    return main(
        ["annotate", str(rec), "--out", str(out), "--detector", "energy", "--examples",
         str(examples), "--quiet", *extra]
    )  # fmt: skip


def test_every_event_gets_the_nearest_class_in_every_table_and_picture(tiny_embedder, tmp_path):
    (tmp_path / "site").mkdir()
    rec = _recording(tmp_path / "site" / "rec.wav", CALLS)
    examples = _examples(tmp_path / "examples")
    out = tmp_path / "out"
    assert _annotate(rec, out, examples, "--format", "raven,csv,parquet", "--plots") == 0
    table = pd.read_csv(out / "site" / "rec.events.csv").sort_values("start_s")
    assert len(table) == len(CALLS)
    assert list(table["label"]) == ["low", "high", "low", "high"]
    assert table["similarity"].between(-1, 1).all()
    raven = read_annotations(out / "site" / "rec.selections.txt", "raven")
    assert list(raven.sort_values("start_s")["label"]) == ["low", "high", "low", "high"]
    assert raven["Similarity"].astype(float).between(-1, 1).all()
    run_wide = pd.read_csv(out / "events.csv")
    assert sorted(run_wide["label"]) == ["high", "high", "low", "low"]
    assert "similarity" in pd.read_parquet(out / "events.parquet").columns
    assert (out / "site" / "rec.png").exists()
    settings = json.loads((out / "run.json").read_text())["detector"]["examples"]
    assert settings["classes"] == {"high": 3, "low": 3} and len(settings["fingerprint"]) == 16


def test_other_examples_are_a_changed_setting(tiny_embedder, tmp_path, capsys):
    rec = _recording(tmp_path / "rec.wav", CALLS)
    examples = _examples(tmp_path / "examples")
    assert _annotate(rec, tmp_path / "out", examples) == 0
    sf.write(examples / "low" / "extra.wav", _tone(LOW_HZ, 0.25, 9), RATE)
    capsys.readouterr()
    assert _annotate(rec, tmp_path / "out", examples) == 2
    assert "examples.fingerprint" in capsys.readouterr().err


def test_examples_from_recordings_with_raven_tables(tiny_embedder, tmp_path):
    folder = tmp_path / "examples"
    folder.mkdir()
    calls = [(0.5 + k, 0.3, LOW_HZ if k % 2 else HIGH_HZ) for k in range(10)]
    _recording(folder / "day1.wav", calls, seconds=11.0, seed=3)
    events = pd.DataFrame(  # boxes as a detector draws them, a little wider than the tones
        {"start_s": [c[0] - 0.005 for c in calls], "end_s": [c[0] + c[1] + 0.005 for c in calls],
         "label": ["low" if c[2] == LOW_HZ else "high" for c in calls]}
    )  # fmt: skip
    from biomae.annotations import make_events

    write_annotations(make_events(events), folder / "day1.selections.txt", "raven")
    examples, layout = find_examples(folder)
    assert layout == "raven" and len(examples) == 10
    rec = _recording(tmp_path / "rec.wav", CALLS)
    assert _annotate(rec, tmp_path / "out", folder, "--format", "csv") == 0
    table = pd.read_csv(tmp_path / "out" / f"{tmp_path.name}" / "rec.events.csv")
    assert list(table.sort_values("start_s")["label"]) == ["low", "high", "low", "high"]


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: _examples(d) and __import__("shutil").rmtree(d / "high"), "at least 2 classes"),
        (lambda d: _examples(d) and (d / "empty").mkdir(), "class 'empty' has no audio clip"),
        (lambda d: _examples(d) and (d / "low" / "bad.wav").write_bytes(b"RIFF junk"), "bad.wav"),
        (lambda d: _examples(d) and (d / "loose.wav").write_bytes(b""), "outside a class folder"),
    ],
    ids=["one class", "class without clip", "unreadable clip", "clip outside a class"],
)
def test_unusable_examples_are_refused_naming_the_folder_or_file(
    tiny_embedder, tmp_path, capsys, make, expected
):
    folder = tmp_path / "examples"
    make(folder)
    rec = _recording(tmp_path / "rec.wav", CALLS)
    assert _annotate(rec, tmp_path / "out", folder) == 2
    err = capsys.readouterr().err
    assert expected in err and str(folder) in err
    assert not list((tmp_path / "out").glob("**/*.selections.txt"))


def test_missing_examples_folder_is_refused(tiny_embedder, tmp_path, capsys):
    rec = _recording(tmp_path / "rec.wav", CALLS)
    assert _annotate(rec, tmp_path / "out", tmp_path / "nowhere") == 2
    assert "nowhere: no such folder" in capsys.readouterr().err


def test_threshold_is_the_5th_percentile_of_leave_one_out_similarities():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:2] * 10
    embeddings = np.concatenate([c + rng.normal(size=(10, 8)) for c in centres])
    names = ["a"] * 10 + ["b"] * 10
    labeller = Labeller.fit(embeddings, names, "nearest")
    own, other = labeller.leave_one_out()
    assert labeller.threshold == pytest.approx(np.quantile(own, 0.05))
    assert labeller.loo_accuracy == 1.0 and (own > other).all()
    labels, similarity = labeller.predict(np.stack([centres[1], -centres[0] + 10 * np.eye(8)[5]]))
    assert labels == ["b", "unknown"]
    assert similarity[1] < labeller.threshold <= similarity[0]


def test_one_example_per_class_cannot_calibrate():
    with pytest.raises(ExamplesError, match="at least 2 examples of one class"):
        Labeller.fit(np.eye(3), ["a", "b", "c"])


def test_a_clip_and_the_same_sound_in_a_recording_embed_alike(tiny_detect_model, tmp_path):
    embedder = Embedder(tiny_detect_model)
    tone = _tone(LOW_HZ, 0.3, 0)
    sf.write(tmp_path / "clip.wav", tone, RATE)
    rec = _recording(tmp_path / "rec.wav", [(2.0, 0.3, LOW_HZ)])
    clip = embed_spans(embedder, tmp_path / "clip.wav", [0.0], [0.3])
    inside = embed_spans(embedder, rec, [2.0], [2.3])
    np.testing.assert_allclose(clip, inside, rtol=1e-4, atol=1e-5)


def test_in_context_pooling_encodes_only_windows_with_spans(tiny_detect_model, tmp_path):
    embedder = Embedder(tiny_detect_model)  # 1.28-s windows
    rec = _recording(tmp_path / "rec.wav", [(4.0, 0.3, LOW_HZ)], seconds=12.0)
    encoded = []
    tokens = embedder.tokens
    embedder.tokens = lambda audio: encoded.append(len(audio)) or tokens(audio)
    vectors = embed_spans(embedder, rec, [4.0, 4.1], [4.3, 4.2], context=True)  # window 3 only
    assert sum(encoded) == 1 and vectors.shape == (2, embedder.dim)
    with pytest.raises(ValueError, match="past the end"):
        embed_spans(embedder, rec, [13.0], [13.5], context=True)


def test_pictures_print_labels_after_the_numbers(tmp_path):
    import matplotlib.pyplot as plt

    from biomae.annotations import make_events
    from biomae.viz import events_figure

    events = make_events({"start_s": [0.2, 0.6], "end_s": [0.3, 0.7], "label": ["low", "high"]})
    audio = _tone(LOW_HZ, 1.0, 0)
    for show, texts in ((True, ["1 low", "2 high"]), (False, ["1", "2"])):
        fig = events_figure(audio, RATE, events, show_labels=show)
        assert [t.get_text() for t in fig.axes[0].texts] == texts
        plt.close(fig)
