"""ONNX export: ``biomae export`` writes one graph (front end included) whose frame scores match
torch's within 1e-4, and ``biomae annotate`` runs it (``--model M.onnx``, ``--runtime``) with the
same events — without importing torch. Skipped where the ``onnx`` extra is not installed."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from biomae.cli import main

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")

FP32_TOLERANCE = 1e-4  # frame scores, ONNX Runtime fp32 vs torch (2.4e-5 on real recordings)
INT8_TOLERANCE = 0.1  # int8 weights: scores move by a few hundredths (docs/edge.md)


@pytest.fixture(autouse=True)
def auto_as_shipped(monkeypatch, tmp_path):
    """``auto`` as users meet it (conftest.py pins the other tests to torch), with an empty
    cache of graphs under ``tmp_path``."""
    monkeypatch.delenv("BIOMAE_RUNTIME", raising=False)
    monkeypatch.setenv("BIOMAE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def exported(tiny_detect_model, tmp_path_factory):
    """The tiny model exported once, fp32 and int8."""
    out = tmp_path_factory.mktemp("onnx")
    assert main(["export", str(tiny_detect_model), "--onnx", str(out / "m.onnx")]) == 0
    assert main(["export", str(tiny_detect_model), "--onnx", str(out / "m8.onnx"), "--int8"]) == 0
    return out / "m.onnx", out / "m8.onnx"


@pytest.fixture
def cache(auto_as_shipped, exported, tiny_detect_model):
    """A cache holding the tiny model's graph, as ``biomae export M --onnx`` writes it."""
    from biomae.onnx_scorer import cached_onnx_path

    cached = cached_onnx_path(tiny_detect_model)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(exported[0].read_bytes())
    return cached


def _scores(model, path, runtime="torch"):
    from biomae.detectors.model import InferConfig, ModelDetector

    config = InferConfig(runtime=runtime if str(model).endswith(".safetensors") else "auto")
    return ModelDetector(model, config).frame_scores(path)[0]


def test_onnx_frame_scores_match_torch(exported, tiny_detect_model, example_path):
    fp32, int8 = exported
    torch_scores = _scores(tiny_detect_model, example_path)
    fp32_scores, int8_scores = _scores(fp32, example_path), _scores(int8, example_path)
    assert fp32_scores.shape == torch_scores.shape
    assert np.abs(fp32_scores - torch_scores).max() <= FP32_TOLERANCE
    assert np.abs(int8_scores - torch_scores).max() <= INT8_TOLERANCE
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size


def test_the_graph_says_what_running_it_needs_without_torch(exported, tiny_detect_model):
    """The metadata a run needs (rate, window, frame hop, outputs, labels, decode settings, band)
    is JSON in the graph, read by ONNX Runtime: the same as the torch model's."""
    from biomae.infer import ModelInfo
    from biomae.onnx_scorer import OnnxWindowScorer
    from biomae.torch_scorer import load_detection_model

    model, spec = load_detection_model(tiny_detect_model, "cpu")
    graph = OnnxWindowScorer(exported[0])
    assert graph.info == ModelInfo.of_spec(spec, model.head)
    assert graph.info.sample_rate == 16000 and graph.info.band_hz == (0.0, 8000.0)
    assert ModelInfo.from_json(graph.metadata["biomae.info"]) == graph.info


def test_a_graph_exported_before_biomae_info_still_runs(exported, tmp_path):
    import onnx

    from biomae.onnx_scorer import OnnxWindowScorer

    graph = onnx.load(str(exported[0]))
    kept = [p for p in graph.metadata_props if p.key != "biomae.info"]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    onnx.save(graph, str(tmp_path / "old.onnx"))
    assert OnnxWindowScorer(tmp_path / "old.onnx").info == OnnxWindowScorer(exported[0]).info


def test_annotate_with_the_graph_gives_the_same_events(exported, tiny_detect_model, example_path,
                                                       tmp_path):  # fmt: skip
    options = ["--threshold", "0.105", "--quiet", "--format", "csv"]
    for name, model in (("torch", tiny_detect_model), ("onnx", exported[0])):
        args = [str(example_path), "--out", str(tmp_path / name), "--model", str(model)]
        assert main(["annotate", *args, *options, "--runtime", name]) == 0
    torch_events = pd.read_parquet(tmp_path / "torch" / "events.parquet")
    onnx_events = pd.read_parquet(tmp_path / "onnx" / "events.parquet")
    assert len(torch_events) > 0
    columns = ["start_s", "end_s", "low_hz", "high_hz"]
    pd.testing.assert_frame_equal(onnx_events[columns], torch_events[columns])
    np.testing.assert_allclose(onnx_events["score"], torch_events["score"], atol=FP32_TOLERANCE)


# The command as a user runs it, in a fresh process: which runtime ran, and whether torch loaded.
ANNOTATE = """
import json, sys
from biomae.cli import main
code = main(sys.argv[1:])
torch = sorted(m for m in sys.modules if m.split(".")[0] == "torch")
print(json.dumps({"code": code, "torch": torch}))
"""


def _annotate_process(args, env_changes) -> dict:
    import os

    env = {**os.environ, **env_changes}
    out = subprocess.run(
        [sys.executable, "-c", ANNOTATE, "annotate", *args, "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"stderr": out.stderr}


@pytest.mark.parametrize("runtime", ["onnx", "auto"])
def test_annotate_on_onnx_runtime_never_imports_torch(runtime, cache, tiny_detect_model,
                                                      example_path, tmp_path):  # fmt: skip
    """``--runtime onnx`` (and ``auto``, the default, with the graph in the cache) annotates in a
    process that never imports torch, with the events torch finds."""
    options = ["--model", str(tiny_detect_model), "--threshold", "0.105", "--format", "raven"]
    env = {"BIOMAE_CACHE": str(tmp_path / "cache")}
    out = tmp_path / runtime
    args = [str(example_path), "--out", str(out), *options]
    if runtime != "auto":
        args += ["--runtime", runtime]
    result = _annotate_process(args, env)
    assert result["code"] == 0 and result["torch"] == [], result["stderr"]
    assert json.loads((out / "run.json").read_text())["detector"]["runtime"] == "onnx"
    reference = tmp_path / "torch"
    assert main(["annotate", str(example_path), "--out", str(reference), *options,
                 "--runtime", "torch", "--quiet"]) == 0  # fmt: skip
    got, expected = (pd.read_parquet(o / "events.parquet") for o in (out, reference))
    assert len(expected) > 0
    columns = ["start_s", "end_s", "low_hz", "high_hz", "label"]
    pd.testing.assert_frame_equal(got[columns], expected[columns])
    np.testing.assert_allclose(got["score"], expected["score"], atol=FP32_TOLERANCE)


def test_the_energy_detector_never_imports_torch(example_path, tmp_path):
    args = [str(example_path), "--out", str(tmp_path / "e"), "--detector", "energy"]
    result = _annotate_process(args, {})
    assert result["code"] == 0 and result["torch"] == [], result["stderr"]


def test_auto_exports_once_then_runs_the_cached_graph(exported, tiny_detect_model, tmp_path,
                                                      monkeypatch, capsys):  # fmt: skip
    """``auto`` with onnxruntime installed and no graph in the cache exports it once (saying so
    on stderr) and runs it; the next run finds it and exports nothing."""
    from biomae import export
    from biomae.detectors.model import InferConfig, ModelDetector

    calls = []

    def fake_export(model_path, out_path, int8=False):  # the fixture's graph, as the export
        calls.append(model_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_bytes(exported[0].read_bytes())
        return out_path

    monkeypatch.setattr(export, "export_onnx", fake_export)
    config = InferConfig(runtime="auto", device="auto", bf16=None)
    first = ModelDetector(tiny_detect_model, config)
    assert first.runtime == "onnx" and len(calls) == 1
    assert "exporting" in capsys.readouterr().err
    second = ModelDetector(tiny_detect_model, config)
    assert second.runtime == "onnx" and len(calls) == 1
    assert capsys.readouterr().err == ""
    assert ModelDetector(tiny_detect_model, InferConfig(runtime="torch")).runtime == "torch"
    assert ModelDetector(exported[0], config).runtime == "onnx"  # an .onnx model file


def test_auto_keeps_torch_where_onnx_runtime_cannot_run_the_model(tiny_detect_model, tmp_path,
                                                                  monkeypatch):  # fmt: skip
    from biomae import onnx_scorer

    choose = onnx_scorer.choose_runtime
    assert choose(tiny_detect_model, "auto", "cpu", bf16=True) == ("torch", None)  # bf16
    assert choose(tiny_detect_model, "auto", "cuda") == ("torch", None)  # a GPU
    monkeypatch.setattr(onnx_scorer, "onnxruntime_available", lambda: False)
    assert choose(tiny_detect_model, "auto", "cpu") == ("torch", None)
    with pytest.raises(ValueError, match=r"pip install 'biomae\[onnx\]'"):
        choose(tiny_detect_model, "onnx", "cpu")
    assert not (tmp_path / "cache").exists()  # nothing exported


def test_a_failed_export_leaves_auto_on_torch_and_is_not_retried(tiny_detect_model, tmp_path,
                                                                 monkeypatch, capsys):  # fmt: skip
    from biomae import export, onnx_scorer

    calls = []

    def failing_export(model_path, out_path, int8=False):
        calls.append(model_path)
        raise RuntimeError("the exporter broke")

    monkeypatch.setattr(export, "export_onnx", failing_export)
    assert onnx_scorer.choose_runtime(tiny_detect_model, "auto", "cpu", False) == ("torch", None)
    assert "the exporter broke" in capsys.readouterr().err
    assert onnx_scorer.choose_runtime(tiny_detect_model, "auto", "cpu", False) == ("torch", None)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="the exporter broke"):
        onnx_scorer.choose_runtime(tiny_detect_model, "onnx", "cpu", False)


def test_an_onnx_model_refuses_torch_and_a_gpu(exported):
    from biomae.onnx_scorer import choose_runtime

    with pytest.raises(ValueError, match="ONNX graph"):
        choose_runtime(exported[0], "torch")
    with pytest.raises(ValueError, match="CPU in fp32"):
        choose_runtime(exported[0], "auto", "cuda")


def test_rerunning_a_folder_across_runtimes_and_from_before_runtime_was_recorded(
    cache, tiny_detect_model, example_path, tmp_path
):
    """run.json records the runtime that ran; a rerun on the other runtime resumes (the same
    events), and a folder written before the runtime was recorded (no ``runtime`` key) reruns
    without --overwrite."""
    out = tmp_path / "out"
    args = ["annotate", str(example_path), "--out", str(out), "--model", str(tiny_detect_model)]
    assert main([*args, "--runtime", "torch", "--quiet"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["detector"]["runtime"] == "torch"
    del run["detector"]["runtime"]  # as biomae wrote it before this setting was recorded
    (out / "run.json").write_text(json.dumps(run))
    assert main([*args, "--runtime", "onnx", "--quiet"]) == 0
    assert main([*args, "--quiet"]) == 0  # the default
    assert main([*args, "--threshold", "0.3", "--quiet"]) == 2  # a real change still counts


def test_a_graph_that_is_not_biomaes_is_refused(tmp_path, exported):
    import onnx

    from biomae.onnx_scorer import OnnxWindowScorer

    graph = onnx.load(str(exported[0]))
    del graph.metadata_props[:]
    onnx.save(graph, str(tmp_path / "plain.onnx"))
    with pytest.raises(ValueError, match="not a biomae detection graph"):
        OnnxWindowScorer(tmp_path / "plain.onnx")


def test_auto_with_a_corrupt_model_file_says_one_line_and_exports_nothing(example_path, tmp_path,
                                                                          capsys):  # fmt: skip
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"garbage")
    args = [str(example_path), "--out", str(tmp_path / "out"), "--model", str(model), "--quiet"]
    assert main(["annotate", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"model file {model} is unreadable" in err
    assert not (tmp_path / "cache").exists()
