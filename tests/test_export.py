"""ONNX export: ``biomae export`` writes one graph (front end included) whose frame scores match
torch's within 1e-5, and ``biomae annotate`` runs it (``--model M.onnx``, ``--runtime``) with the
same events. Skipped where the ``onnx`` extra is not installed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biomae.cli import main

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")

FP32_TOLERANCE = 1e-4  # frame scores, ONNX Runtime fp32 vs torch (2.4e-5 on real recordings)
INT8_TOLERANCE = 0.1  # int8 weights: scores move by a few hundredths (docs/edge.md)


@pytest.fixture(scope="module")
def exported(tiny_detect_model, tmp_path_factory):
    """The tiny model exported once, fp32 and int8."""
    out = tmp_path_factory.mktemp("onnx")
    assert main(["export", str(tiny_detect_model), "--onnx", str(out / "m.onnx")]) == 0
    assert main(["export", str(tiny_detect_model), "--onnx", str(out / "m8.onnx"), "--int8"]) == 0
    return out / "m.onnx", out / "m8.onnx"


def _scores(model, path):
    from biomae.detectors.model import ModelDetector

    return ModelDetector(model).frame_scores(path)[0]


def test_onnx_frame_scores_match_torch(exported, tiny_detect_model, example_path):
    fp32, int8 = exported
    torch_scores = _scores(tiny_detect_model, example_path)
    fp32_scores, int8_scores = _scores(fp32, example_path), _scores(int8, example_path)
    assert fp32_scores.shape == torch_scores.shape
    assert np.abs(fp32_scores - torch_scores).max() <= FP32_TOLERANCE
    assert np.abs(int8_scores - torch_scores).max() <= INT8_TOLERANCE
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size


def test_annotate_with_the_graph_gives_the_same_events(exported, tiny_detect_model, example_path,
                                                       tmp_path):  # fmt: skip
    options = ["--threshold", "0.105", "--quiet", "--format", "csv"]
    for name, model in (("torch", tiny_detect_model), ("onnx", exported[0])):
        args = [str(example_path), "--out", str(tmp_path / name), "--model", str(model)]
        assert main(["annotate", *args, *options]) == 0
    torch_events = pd.read_parquet(tmp_path / "torch" / "events.parquet")
    onnx_events = pd.read_parquet(tmp_path / "onnx" / "events.parquet")
    assert len(torch_events) > 0
    columns = ["start_s", "end_s", "low_hz", "high_hz"]
    pd.testing.assert_frame_equal(onnx_events[columns], torch_events[columns])
    np.testing.assert_allclose(onnx_events["score"], torch_events["score"], atol=FP32_TOLERANCE)


def test_runtime_onnx_uses_the_cached_graph_and_auto_keeps_torch(exported, tiny_detect_model,
                                                                monkeypatch, tmp_path):  # fmt: skip
    from biomae.detectors.model import ModelDetector
    from biomae.onnx_scorer import cached_onnx_path, use_runtime

    monkeypatch.setenv("BIOMAE_CACHE", str(tmp_path))
    cached = cached_onnx_path(tiny_detect_model)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(exported[0].read_bytes())  # what `biomae export M --onnx` writes there
    detector = ModelDetector(tiny_detect_model)
    assert use_runtime(detector, "onnx") == "onnx" and detector.scorer.runtime is not None
    assert use_runtime(ModelDetector(tiny_detect_model), "auto") == "torch"
    assert use_runtime(ModelDetector(exported[0]), "auto") == "onnx"  # an .onnx model file


def test_runtime_onnx_without_onnxruntime_names_the_extra(tiny_detect_model, monkeypatch):
    from biomae import onnx_scorer
    from biomae.detectors.model import ModelDetector

    monkeypatch.setattr(onnx_scorer, "onnxruntime_available", lambda: False)
    with pytest.raises(ValueError, match=r"pip install 'biomae\[onnx\]'"):
        onnx_scorer.use_runtime(ModelDetector(tiny_detect_model), "onnx")


def test_a_graph_that_is_not_biomaes_is_refused(tmp_path, exported):
    import onnx

    from biomae.onnx_scorer import load_onnx_model

    graph = onnx.load(str(exported[0]))
    del graph.metadata_props[:]
    onnx.save(graph, str(tmp_path / "plain.onnx"))
    with pytest.raises(ValueError, match="not a biomae graph"):
        load_onnx_model(tmp_path / "plain.onnx")
