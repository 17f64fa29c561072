"""ONNX Runtime as the runtime of :class:`biomae.infer.Scorer`, and the choice of runtime
(``biomae annotate --runtime`` / ``biomae embed --runtime``, ``InferConfig.runtime``).

A graph written by :func:`biomae.export.export_onnx` maps audio windows to frame scores, the work
of :meth:`Scorer.window_probs`; windows, averaging and decoding stay the same. Nothing here
imports torch: the model's facts (rate, window, frame hop, outputs, labels, decode settings, band)
are JSON in the graph's metadata (``biomae.info``, :class:`biomae.infer.ModelInfo`), read by
ONNX Runtime. :func:`choose_runtime` decides what runs a model:

- ``onnx``: an ``.onnx`` model file as it is; a ``.safetensors`` model (or the starter) by its
  graph in the cache (:func:`cached_onnx_path`: ``$BIOMAE_CACHE/onnx`` or
  ``~/.cache/biomae/onnx``), exported on first use (needs torch and the ``onnx`` extra, 20-40 s);
- ``torch``: a ``.safetensors`` model on torch;
- ``auto`` (the default): an ``.onnx`` model on ONNX Runtime; a ``.safetensors`` model on
  ``$BIOMAE_RUNTIME`` when set (torch or onnx), else on ONNX Runtime whenever it is installed and
  the model runs on the CPU in fp32 (``--device`` auto without a GPU, or cpu; ``--bf16`` not on),
  exporting the graph once when the cache has none (a line on stderr says so); on torch
  otherwise (a GPU, bf16, no onnxruntime, or an export that cannot be made). Measured
  (docs/edge.md): the ONNX path starts without torch and scores as fast, so a whole command is
  faster on ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from biomae.infer import ModelInfo

RUNTIMES = ("auto", "torch", "onnx")
RUNTIME_ENV = "BIOMAE_RUNTIME"  # when set, what auto runs a .safetensors model on


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _can_export() -> bool:
    """Whether this install can export a graph: torch, onnx and onnxscript importable."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("torch", "onnx", "onnxscript"))


def _threads() -> int:
    """Math threads: ``OMP_NUM_THREADS`` when set (as torch), else every core."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else (os.cpu_count() or 1)


def session(path: str | os.PathLike):
    """An ONNX Runtime CPU session of the graph at ``path``, with :func:`_threads` threads.

    Raises:
        ImportError: onnxruntime is not installed (naming the extra).
    """
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ImportError(
            f"{path}: running an ONNX model needs onnxruntime: pip install 'biomae[onnx]'"
        ) from err
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = _threads(), 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxWindowScorer:
    """An exported graph as ``windows (b, window_samples) float32 → probs (b, T_out, channels)``
    (:class:`biomae.infer.WindowScorer`); ``info`` from its metadata.

    Args:
        path: a graph written by :func:`biomae.export.export_onnx`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a graph without biomae's metadata.
    """

    runtime = "onnx"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"model {path}: no such file")
        self.session = session(path)
        self.metadata = self.session.get_modelmeta().custom_metadata_map
        self.info = graph_info(self.metadata, path)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        audio = np.ascontiguousarray(windows, dtype=np.float32)
        return self.session.run(None, {"audio": audio})[0]


class OnnxWindowTokens:
    """An embedding graph (:func:`biomae.export.export_embedding_onnx`) as ``windows (b,
    window_samples) float32 → tokens (b, grid_f, grid_t, D)`` (:class:`biomae.embed.Embedder`);
    ``info`` (``sample_rate``, ``window_s``, ``hop_s``, ``patch_t``, ``dim``) from its metadata.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a biomae embedding graph.
    """

    runtime = "onnx"

    def __init__(self, path: str | os.PathLike):
        if not Path(path).is_file():
            raise FileNotFoundError(f"model {path}: no such file")
        self.session = session(path)
        metadata = self.session.get_modelmeta().custom_metadata_map
        if "biomae.embed_info" not in metadata:
            raise ValueError(f"{path}: not a biomae embedding graph (no biomae.embed_info "
                             "metadata); give a .safetensors model")  # fmt: skip
        self.info = json.loads(metadata["biomae.embed_info"])

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        audio = np.ascontiguousarray(windows, dtype=np.float32)
        return self.session.run(None, {"audio": audio})[0]


def graph_info(metadata: dict[str, str], path: str | os.PathLike = "graph") -> ModelInfo:
    """The :class:`ModelInfo` in a detection graph's metadata (``biomae.info``; a graph exported
    before that key existed: derived from its ``biomae.spec``, ``biomae.outputs`` and
    ``biomae.frame_hop_s`` with the front end's default band, 0 Hz to Nyquist on the mel scale).

    Raises:
        ValueError: not a biomae detection graph.
    """
    if "biomae.info" in metadata:
        return ModelInfo.from_json(metadata["biomae.info"])
    if "biomae.spec" not in metadata or "biomae.outputs" not in metadata:
        raise ValueError(f"{path}: not a biomae detection graph (no biomae.info metadata); write "
                         "one with biomae export MODEL --onnx OUT.onnx")  # fmt: skip
    from biomae.decode import DecodeConfig

    spec = json.loads(metadata["biomae.spec"])
    sample_rate, labels = int(spec["front_end"]["sample_rate"]), tuple(spec.get("labels", ()))
    return ModelInfo(
        sample_rate=sample_rate,
        window_s=float(spec["window_s"]),
        frame_hop_s=float(metadata["biomae.frame_hop_s"]),
        outputs=tuple(json.loads(metadata["biomae.outputs"])),
        n_classes=int(spec.get("head", {}).get("n_classes", max(1, len(labels)))),
        labels=labels,
        decode=DecodeConfig(**(spec.get("decode") or {})),
        band_hz=(0.0, sample_rate / 2),
    )


# ------------------------------------------------------------------------------ the graph cache


def cache_dir() -> Path:
    return Path(os.environ.get("BIOMAE_CACHE") or Path.home() / ".cache" / "biomae") / "onnx"


def model_file(name: str | os.PathLike) -> Path:
    """``"starter"`` → the packaged starter model; anything else is a path (as
    :func:`biomae.models.files.resolve_model_path`, without torch)."""
    from biomae.starter import PACKAGED_MODEL

    return PACKAGED_MODEL if str(name) == "starter" else Path(name)


def cached_onnx_path(
    model_path: str | os.PathLike, int8: bool = False, kind: str = "detect"
) -> Path:
    """Where the graph of ``model_path`` is cached: named by the model file's SHA-256, so a
    changed model file is exported anew. ``kind``: "detect" (frame scores) or "embed" (encoder
    tokens, :func:`biomae.export.export_embedding_onnx`).

    Raises:
        FileNotFoundError: no file at ``model_path``.
    """
    path = model_file(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"model {path}: no such file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    tags = ("-embed" if kind == "embed" else "") + ("-int8" if int8 else "")
    return cache_dir() / f"{path.stem}-{digest}{tags}.onnx"


def _runs_on_cpu(device: str) -> bool:
    """Whether ``--device`` means the CPU, without importing torch where no GPU can be (no
    NVIDIA or ROCm device node)."""
    if device == "cpu":
        return True
    if device != "auto":
        return False
    if not any(Path(node).exists() for node in ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")):
        return True
    import torch

    return not torch.cuda.is_available()


def choose_runtime(
    model_path: str | os.PathLike,
    runtime: str = "auto",
    device: str = "auto",
    bf16: bool | None = None,
    kind: str = "detect",
) -> tuple[str, Path | None]:
    """``("onnx", graph)`` or ``("torch", None)``: what runs ``model_path`` (module docstring),
    exporting the graph into the cache when ``onnx`` (or ``auto``) needs it.

    Args:
        model_path: a ``.safetensors`` or ``.onnx`` model file, or ``starter``.
        runtime: "auto", "torch" or "onnx".
        device, bf16: ``InferConfig``'s (ONNX Runtime runs on the CPU in fp32).
        kind: "detect" or "embed" (which graph).

    Raises:
        ValueError: an unknown runtime, or one that cannot run this model here (naming the fix).
        FileNotFoundError: no model file.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r}: give one of {', '.join(RUNTIMES)}")
    path = model_file(model_path)
    if path.suffix == ".onnx":
        if runtime == "torch":
            raise ValueError(f"--runtime torch: {path} is an ONNX graph; give its .safetensors")
        if device not in ("auto", "cpu") or bf16:
            raise ValueError(f"{path}: an ONNX graph runs on the CPU in fp32; drop --device / "
                             "--bf16 on, or give its .safetensors")  # fmt: skip
        return "onnx", path
    if runtime == "auto" and os.environ.get(RUNTIME_ENV):
        runtime = os.environ[RUNTIME_ENV]
        if runtime not in RUNTIMES:
            raise ValueError(f"${RUNTIME_ENV}={runtime!r}: give one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return "torch", None
    from biomae.devices import bf16_is_fast

    on_cpu = _runs_on_cpu(device)
    cpu_fp32 = on_cpu and not (bf16_is_fast("cpu") if bf16 is None else bf16)
    if runtime == "onnx":
        if not cpu_fp32:
            raise ValueError("--runtime onnx runs on the CPU in fp32: drop --device / --bf16 on")
        if not onnxruntime_available():
            raise ValueError("--runtime onnx needs onnxruntime: pip install 'biomae[onnx]'")
        return "onnx", _exported(path, kind, required=True)
    if not (cpu_fp32 and onnxruntime_available()):
        return "torch", None
    graph = _exported(path, kind, required=False)
    return ("onnx", graph) if graph is not None else ("torch", None)


def _exported(path: Path, kind: str, required: bool) -> Path | None:
    """The cached graph of ``path``, exported now when missing (a line on stderr says so). Where
    the exporter fails: an error when ``required``, else None (and a ``.failed`` note beside it,
    so that ``auto`` does not try again on every run). A model file that is not a biomae model
    raises its own error (ValueError, FileNotFoundError) either way."""
    graph = cached_onnx_path(path, kind=kind)
    if graph.exists():
        return graph
    failed = graph.with_suffix(".failed")
    if not required and (failed.exists() or not _can_export()):
        return None
    from biomae import export
    from biomae.models.files import read_metadata, read_spec

    read_spec(path, read_metadata(path))  # a corrupt or foreign file: its one-line error first
    print(f"biomae: exporting {path} for ONNX Runtime to {graph} (once; 20-40 s)", file=sys.stderr)
    try:
        (export.export_embedding_onnx if kind == "embed" else export.export_onnx)(path, graph)
    except (ValueError, FileNotFoundError):
        raise  # the model file itself (not a biomae model, ...): torch would say the same
    except Exception as err:  # the exporter (torch's raises many kinds)
        if required:
            raise ValueError(f"--runtime onnx: exporting {path} failed: {err}") from err
        print(f"biomae: export failed ({err}); running on torch", file=sys.stderr)
        failed.parent.mkdir(parents=True, exist_ok=True)
        failed.write_text(f"{type(err).__name__}: {err}\n", encoding="utf-8")
        return None
    return graph
