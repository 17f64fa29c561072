"""`biomae evaluate --embeddings DIR`: the embedding probes as a command, and the species split of
the shipped embedding model (training can never see a held-out species)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.cli import main
from biomae.evaluate import embedding_split as split
from biomae.evaluate.embedding_suite import folder_set, model_embeddings


def _tone(path, freq_hz, seconds=1.0, rate=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * freq_hz * t) + 0.01 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.astype(np.float32), rate)


@pytest.fixture
def labelled_clips(tmp_path):
    """Two labels, three clips each: low and high tones."""
    folder = tmp_path / "clips"
    for i in range(3):
        _tone(folder / "low" / f"{i}.wav", 800 + 40 * i, seed=i)
        _tone(folder / "high" / f"{i}.flac", 4000 + 40 * i, seed=10 + i)
    return folder


def test_evaluate_embeddings_writes_table_and_json(
    labelled_clips, tiny_detect_model, tmp_path, capsys
):
    out = tmp_path / "probe"
    argv = ["evaluate", "--embeddings", str(labelled_clips), "--out", str(out)]
    assert main([*argv, "--model", str(tiny_detect_model), "--no-birdnet"]) == 0
    printed = capsys.readouterr().out
    assert "| logmel |" in printed and f"| {tiny_detect_model} |" in printed
    report = json.loads((out / "embeddings.json").read_text())
    rows = pd.read_csv(out / "embeddings.csv")
    # log-mel statistics separate two tones perfectly; the detector encoder is scored beside them
    assert set(rows["embedding"]) == {"logmel", str(tiny_detect_model), "detector"}
    logmel = rows[rows["embedding"] == "logmel"].iloc[0]
    assert (logmel.n_clips, logmel.n_labels) == (6, 2)
    assert logmel.nn_accuracy == 1.0 and logmel.probe_accuracy == 1.0
    assert report["target"] == str(labelled_clips) and len(report["rows"]) == 3
    assert (out / "embeddings.md").read_text().startswith("| embedding | mean_nn_accuracy")


def test_evaluate_embeddings_notes_a_missing_birdnet(
    labelled_clips, tiny_detect_model, tmp_path, monkeypatch
):
    monkeypatch.setenv("BIOMAE_BIRDNET_PYTHON", str(tmp_path / "no-such-python"))
    out = tmp_path / "probe"
    argv = ["evaluate", "--embeddings", str(labelled_clips), "--out", str(out)]
    assert main([*argv, "--model", str(tiny_detect_model)]) == 0
    notes = json.loads((out / "embeddings.json").read_text())["notes"]
    assert any(n.startswith("birdnet: left out (no BirdNET environment at") for n in notes)


def test_evaluate_embeddings_rejects_unlabelled_audio(tmp_path, capsys):
    _tone(tmp_path / "clips" / "loose.wav", 1000)
    _tone(tmp_path / "clips" / "a" / "0.wav", 1000)
    argv = ["evaluate", "--embeddings", str(tmp_path / "clips"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--no-birdnet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "loose.wav" in err and "<label>" in err


def test_evaluate_embeddings_needs_two_labels_of_two_clips(tmp_path, capsys):
    _tone(tmp_path / "clips" / "a" / "0.wav", 1000)
    _tone(tmp_path / "clips" / "a" / "1.wav", 1000)
    _tone(tmp_path / "clips" / "b" / "0.wav", 3000)
    argv = ["evaluate", "--embeddings", str(tmp_path / "clips"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--no-birdnet"]) == 2
    assert "need 2 labels of 2 clips each" in capsys.readouterr().err


def test_folder_set_labels_by_folder(labelled_clips):
    table = folder_set(labelled_clips)
    assert sorted(table["label"].value_counts().items()) == [("high", 3), ("low", 3)]


def test_model_embedding_pools_only_the_audio_a_short_clip_covers(tiny_detect_model):
    from biomae.embed import Embedder

    embedder = Embedder(tiny_detect_model, device="cpu")
    rng = np.random.default_rng(0)
    short = (0.1 * rng.standard_normal(8000)).astype(np.float32)  # 0.5 s of a 1.28-s window
    # a clip spanning two windows is the mean of its windows' embeddings
    long = np.concatenate([short, short, short, short])  # 2 s
    emb = model_embeddings([short, long], embedder)
    assert emb.shape == (2, embedder.dim)
    window = round(embedder.window_s * embedder.sample_rate)
    first = model_embeddings([long[:window]], embedder)[0]
    second = model_embeddings([long[window:]], embedder)[0]
    np.testing.assert_allclose(emb[1], (first + second) / 2, rtol=1e-5, atol=1e-6)


# ---- the species split ----------------------------------------------------------------------


def test_insect_species_split_in_two_disjoint_halves():
    held, train = set(split.INSECT_HELDOUT_SPECIES), set(split.INSECT_TRAIN_SPECIES)
    assert len(held) == len(train) == 16 and not held & train
    assert held | train == set(split.INSECTSET_SPECIES)


@pytest.mark.parametrize(
    ("source", "label"),
    [
        ("insectset32", "insectset32:Brevisianabrevis"),  # a held-out insect species
        ("phoebe", "phoebe:Junco hyemalis"),  # a held-out source
        ("zero_ad", "zero_ad:cattle"),  # a kind of the held-out animals set
        ("scratch_animals", "scratch_animals:Owl"),  # a bird: every bird is held out
    ],
)
def test_training_refuses_held_out_species(source, label):
    row = pd.DataFrame({"path": ["x.wav"], "label": [label], "source": [source], "license": [""]})
    with pytest.raises(ValueError, match="held-out"):
        split.check_disjoint(row)


def test_training_accepts_a_training_species():
    row = pd.DataFrame(
        {"path": ["x.wav"], "label": ["insectset32:Grylluscampestris"], "source": ["insectset32"]}
    )
    split.check_disjoint(row)  # no error


def test_held_out_finch_sets_from_the_shared_data(shared_data, tmp_path):
    songs = split.heldout_set("finch_song_types", shared_data, tmp_path)
    birds = split.heldout_set("finch_individuals", shared_data, tmp_path)
    assert songs["label"].value_counts().max() <= 20 and songs["label"].nunique() >= 5
    assert set(birds["label"]) == {"bl26lb16", "gy6or6"}
    assert (songs["end_s"] > songs["start_s"]).all()
    # the same draw every time (seeded)
    pd.testing.assert_frame_equal(
        songs, split.heldout_set("finch_song_types", shared_data, tmp_path)
    )
