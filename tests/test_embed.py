"""`biomae embed` / `biomae search`: window and event embeddings, Parquet round trip, neighbours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.cli import main
from biomae.embed import Embedder, read_embeddings, search, write_embeddings


def _clip(path, freq_hz, seconds=2.6, rate=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * freq_hz * t) + 0.01 * rng.standard_normal(len(t))
    sf.write(path, audio.astype(np.float32), rate)
    return path


def test_window_embeddings_cover_the_recording(tiny_detect_model, tmp_path):
    embedder = Embedder(tiny_detect_model)
    table = embedder.embed_windows(_clip(tmp_path / "a.wav", 1000), hop_s=0.64)
    assert list(table["start_s"]) == pytest.approx([0.0, 0.64, 1.28, 1.92])
    assert table["end_s"].iloc[-1] == pytest.approx(2.6)
    assert all(len(e) == embedder.dim for e in table["embedding"])
    # deterministic: the same audio gives the same embedding
    again = embedder.embed_windows(tmp_path / "a.wav", hop_s=0.64)
    np.testing.assert_allclose(np.stack(table["embedding"]), np.stack(again["embedding"]))


def test_event_embeddings_and_parquet_round_trip(tiny_detect_model, tmp_path):
    embedder = Embedder(tiny_detect_model)
    path = _clip(tmp_path / "a.wav", 1000)
    events = pd.DataFrame({"start_s": [0.1, 2.0], "end_s": [0.5, 2.6], "label": ["x", "y"]})
    table = embedder.embed_events(path, events)
    assert list(table["label"]) == ["x", "y"]
    out = write_embeddings(table, tmp_path / "e.parquet", tiny_detect_model)
    frame, matrix, metadata = read_embeddings(out)
    assert matrix.shape == (2, embedder.dim)
    np.testing.assert_allclose(matrix, np.stack(table["embedding"]), rtol=1e-6)
    assert metadata["biomae_model"] == str(tiny_detect_model)


def test_search_ranks_by_cosine():
    matrix = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    order, similarity = search(np.array([1.0, 0.0]), matrix, k=3)
    assert list(order) == [0, 1, 2]
    assert similarity[0] == pytest.approx(1.0)


def test_embed_and_search_cli(tiny_detect_model, tmp_path, capsys):
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, freq in enumerate([500, 1000, 3000]):
        _clip(folder / f"c{i}.wav", freq, seed=i)
    index = tmp_path / "index.parquet"
    assert main(["embed", str(folder), "--model", str(tiny_detect_model), "--out", str(index)]) == 0
    frame, matrix, _ = read_embeddings(index)
    assert len(frame) == 3 * 3  # 2.6-s clips in 1.28-s windows: 3 windows each
    result_csv = tmp_path / "hits.csv"
    assert (
        main(
            [
                "search",
                str(folder / "c1.wav"),
                "--index",
                str(index),
                "-k",
                "3",
                "--out",
                str(result_csv),
            ]
        )
        == 0
    )
    hits = pd.read_csv(result_csv)
    assert hits["recording"].iloc[0].endswith("c1.wav")  # a clip is its own nearest neighbour
    assert hits["similarity"].is_monotonic_decreasing


EMBED = """
import json, sys
from biomae.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "torch": [m for m in sys.modules if m.split(".")[0] == "torch"]}))
"""


def test_embed_on_onnx_runtime_equals_torch_without_importing_torch(
    tiny_detect_model, tmp_path, monkeypatch
):
    """``biomae embed`` exports the encoder's graph once (``--runtime onnx``); then ``auto`` runs
    it in a process that never imports torch, with torch's embeddings within 1e-3."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    monkeypatch.setenv("BIOMAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BIOMAE_RUNTIME", raising=False)
    clip = _clip(tmp_path / "a.wav", 1000)
    args = ["embed", str(clip), "--model", str(tiny_detect_model), "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "torch.parquet"), "--runtime", "torch"]) == 0
    assert main([*args, "--out", str(tmp_path / "export.parquet"), "--runtime", "onnx"]) == 0
    out = subprocess.run(
        [sys.executable, "-c", EMBED, *args, "--out", str(tmp_path / "onnx.parquet")],
        capture_output=True, text=True, check=True, env=dict(os.environ),
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "torch": []}, out.stderr
    expected = read_embeddings(tmp_path / "torch.parquet")
    for name in ("export", "onnx"):
        frame, matrix, _ = read_embeddings(tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(frame, expected[0])
        np.testing.assert_allclose(matrix, expected[1], atol=1e-3)


def test_an_other_window_runs_on_torch_and_onnx_refuses_it(tiny_detect_model):
    assert Embedder(tiny_detect_model, window_s=2.0, runtime="auto").runtime == "torch"
    with pytest.raises(ValueError, match="drop --window-s"):
        Embedder(tiny_detect_model, window_s=2.0, runtime="onnx")
