"""ONNX Runtime as the runtime of :class:`biomae.infer.Scorer` (``biomae annotate --runtime``).

A graph written by :func:`biomae.export.export_onnx` maps audio windows to frame scores, the work
of :meth:`Scorer.window_probs`; windows, averaging and decoding stay the same. Two ways in:

- ``--model M.onnx``: the graph is the model file (:func:`load_onnx_model`; its spec is in the
  graph's metadata);
- ``--runtime onnx`` with a ``.safetensors`` model (or the starter): its graph in the cache
  (:func:`cached_onnx_path`, ``$BIOMAE_CACHE`` or ``~/.cache/biomae``), exported on first use.

``--runtime auto`` (the default) runs an ``.onnx`` model on ONNX Runtime and a ``.safetensors``
model on torch: on this project's 2-core reference machine, shared with other jobs, neither was
reliably faster for the starter (ONNX Runtime 1.8x faster annotating 10 min of recordings in one
run, torch 1.7-3x faster scoring batches of windows in others: bench/bench_vs_birdnet.py,
bench/bench_onnx.py, docs/edge.md), so auto does not switch a torch model to ONNX. ONNX Runtime
matters where torch is heavy or absent (edge boards). It never exports on its own (an export
takes ~20-40 s).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

RUNTIMES = ("auto", "torch", "onnx")


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _threads() -> int:
    """Math threads: ``OMP_NUM_THREADS`` when set (as torch), else every core."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else (os.cpu_count() or 1)


class OnnxWindowScorer:
    """An exported graph as ``windows (b, window_samples) float32 → probs (b, T_out, channels)``.

    Args:
        path: a graph written by :func:`biomae.export.export_onnx`.
    """

    def __init__(self, path: str | os.PathLike):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError(
                f"{path}: running an ONNX model needs onnxruntime: pip install 'biomae[onnx]'"
            ) from err
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = _threads(), 1
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.metadata = self.session.get_modelmeta().custom_metadata_map
        if "biomae.spec" not in self.metadata:
            raise ValueError(f"{path}: not a biomae graph (no biomae.spec metadata); write one "
                             "with biomae export MODEL --onnx OUT.onnx")  # fmt: skip

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        audio = np.ascontiguousarray(windows, dtype=np.float32)
        return self.session.run(None, {"audio": audio})[0]


def load_onnx_model(path: str | os.PathLike):
    """``(model, spec)`` of an exported graph, as :func:`biomae.infer.load_detection_model`
    returns them: ``model`` is a stand-in with the head's facts the Scorer reads and ``runtime``
    (the graph)."""
    from biomae.models.files import ModelSpec

    if not Path(path).is_file():
        raise FileNotFoundError(f"model {path}: no such file")
    runtime = OnnxWindowScorer(path)
    spec = ModelSpec.from_json(runtime.metadata["biomae.spec"])
    outputs = tuple(json.loads(runtime.metadata["biomae.outputs"]))
    n_classes = spec.head.get("n_classes", max(1, len(spec.labels)))
    head = SimpleNamespace(
        config=SimpleNamespace(outputs=outputs, n_classes=n_classes),
        frame_hop_s=float(runtime.metadata["biomae.frame_hop_s"]),
    )
    return SimpleNamespace(head=head, runtime=runtime), spec


def cache_dir() -> Path:
    return Path(os.environ.get("BIOMAE_CACHE") or Path.home() / ".cache" / "biomae") / "onnx"


def cached_onnx_path(model_path: str | os.PathLike, int8: bool = False) -> Path:
    """Where the graph of ``model_path`` is cached: named by the model file's SHA-256, so a
    changed model file is exported anew."""
    from biomae.models.files import resolve_model_path

    path = resolve_model_path(model_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return cache_dir() / f"{path.stem}-{digest}{'-int8' if int8 else ''}.onnx"


def use_runtime(detector, runtime: str) -> str:
    """Run ``detector``'s model (a model detector, or the auto detector's) on ``runtime``:
    "torch", "onnx" (the cached graph, exported now if missing) or "auto" (an ``.onnx`` model on
    ONNX Runtime, a torch model on torch: module docstring).
    Returns the runtime chosen ("torch", "onnx", or "" when no model runs)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"--runtime {runtime!r}: give one of {', '.join(RUNTIMES)}")
    model_detector = getattr(detector, "model", None) if hasattr(detector, "energy") else detector
    scorer = getattr(model_detector, "scorer", None)
    if scorer is None:
        return ""
    if scorer.runtime is not None:  # an .onnx model file
        if runtime == "torch":
            raise ValueError(f"--runtime torch: {model_detector.model_path} is an ONNX graph")
        return "onnx"
    if runtime == "torch":
        return "torch"
    if runtime == "auto":  # a torch model stays on torch (module docstring)
        return "torch"
    if not (scorer.device.type == "cpu" and not scorer.bf16):
        raise ValueError("--runtime onnx runs on the CPU in fp32: drop --device / --bf16 on")
    if not onnxruntime_available():
        raise ValueError("--runtime onnx needs onnxruntime: pip install 'biomae[onnx]'")
    path = cached_onnx_path(model_detector.model_path)
    if not path.exists():
        from biomae.export import export_onnx

        print(f"exporting {model_detector.model_path} to {path} (once)", file=sys.stderr)
        export_onnx(model_detector.model_path, path)
    scorer.runtime = OnnxWindowScorer(path)
    return "onnx"
