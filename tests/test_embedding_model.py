"""The shipped embedding model: small, loadable, trained on no held-out species, and the default of
`biomae embed` and `biomae search` (the detector's encoder still selectable)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import soundfile as sf

from biomae.cli import main
from biomae.embed import DEFAULT_EMBEDDING_MODEL, Embedder, read_embeddings
from biomae.evaluate.embedding_split import HELDOUT_SETS, check_disjoint
from biomae.models.files import STARTER_MODEL, read_metadata, read_spec


def test_shipped_model_is_small_and_embeds():
    assert DEFAULT_EMBEDDING_MODEL.stat().st_size < 10e6
    spec = read_spec(DEFAULT_EMBEDDING_MODEL)
    assert spec.task == "embed" and spec.head == {"out_dim": 128}
    embedder = Embedder(device="cpu")  # the default model
    assert embedder.model_path == DEFAULT_EMBEDDING_MODEL
    audio = np.random.default_rng(0).standard_normal((2, round(embedder.window_s * 32000)))
    grid = embedder.tokens(audio.astype(np.float32) * 0.1)  # (B, grid_f, grid_t, D)
    assert grid.shape[0] == 2 and grid.shape[-1] == embedder.dim
    assert np.isfinite(grid).all()


def test_shipped_model_never_trained_on_a_held_out_species():
    metadata = read_metadata(DEFAULT_EMBEDDING_MODEL)
    training = pd.DataFrame(json.loads(metadata["training"]))
    assert len(training) > 10 and set(training["source"]) >= {"insectset32"}
    check_disjoint(training.assign(path="(shipped model's training list)"))
    assert json.loads(metadata["heldout_sets"]) == sorted(HELDOUT_SETS)


def test_embed_defaults_to_the_embedding_model_and_keeps_the_detector(tmp_path):
    clip = tmp_path / "tone.wav"
    t = np.arange(round(2.56 * 32000)) / 32000  # one window of the embedding model
    sf.write(clip, (0.3 * np.sin(2 * np.pi * 2000 * t)).astype(np.float32), 32000)
    default, detector = tmp_path / "default.parquet", tmp_path / "detector.parquet"
    assert main(["embed", str(clip), "--out", str(default), "--no-progress"]) == 0
    assert main(["embed", str(clip), "--model", "detector", "--out", str(detector)]) == 0
    assert read_embeddings(default)[2]["biomae_model"] == str(DEFAULT_EMBEDDING_MODEL)
    assert read_embeddings(detector)[2]["biomae_model"] == str(STARTER_MODEL)
    # search embeds the query with the index's own model
    hits = tmp_path / "hits.csv"
    assert main(["search", str(clip), "--index", str(default), "-k", "1", "--out", str(hits)]) == 0
    assert pd.read_csv(hits)["similarity"].iloc[0] > 0.99
