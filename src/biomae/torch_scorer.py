"""torch as the runtime of :class:`biomae.infer.Scorer`: a model file run by torch, and recordings
decoded in DataLoader worker processes.

:class:`TorchWindowScorer` runs audio windows through the model's front end, encoder and head
(bf16 autocast where enabled) and returns sigmoid frame scores; :func:`load_detection_model`
reads a fine-tuned detection model file (:mod:`biomae.models.files`). The other runtime, ONNX
Runtime on the exported graph of the same path, is :mod:`biomae.onnx_scorer`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from biomae.devices import autocast
from biomae.features import FrontEnd
from biomae.infer import ModelInfo, WindowReader
from biomae.models.files import ModelSpec, load_model, resolve_model_path


def load_detection_model(path: str | Path, device):
    """``(model, spec)`` of the fine-tuned detection model at ``path`` on ``device``
    (:func:`biomae.models.files.load_model`; ``starter`` is the shipped one).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a safetensors file, not a biomae fine-tuned model, or not a detect model
            (one line naming the file and what to give instead).
    """
    from safetensors import SafetensorError

    path = resolve_model_path(path)
    expected = "give a .safetensors model written by biomae finetune --task detect"
    if path.suffix == ".onnx":
        raise ValueError(f"model {path}: an ONNX graph, which torch does not run; {expected}")
    if not path.is_file():
        raise FileNotFoundError(f"model {path}: no such file; {expected}")
    try:
        model, spec = load_model(path, device=device)
    except SafetensorError as err:
        raise ValueError(f"model {path}: not a safetensors file ({err}); {expected}") from err
    except (ValueError, KeyError) as err:
        raise ValueError(f"model {path}: not a biomae model ({err}); {expected}") from err
    if spec.task != "detect":
        raise ValueError(f"model {path}: a {spec.task!r} model; {expected}")
    return model, spec


class TorchWindowScorer:
    """A loaded detection model as ``windows (b, window_samples) → probs (b, T_out, channels)``
    (:class:`biomae.infer.WindowScorer`).

    Args:
        model: encoder + head (:class:`biomae.models.files.TaskModel`) on ``device``, in eval mode.
        spec: its spec (front end, window).
        device: where it runs.
        bf16: bf16 autocast.
    """

    runtime = "torch"

    def __init__(self, model, spec: ModelSpec, device, bf16: bool = False):
        self.model, self.spec, self.device, self.bf16 = model, spec, torch.device(device), bf16
        self.front_end = FrontEnd(spec.front_end, spec.encoder.patch_t, self.device)
        self.info = ModelInfo.of_spec(spec, model.head)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        audio = torch.from_numpy(windows)  # (b, window_samples)
        with torch.no_grad(), autocast(self.device, self.bf16):
            out = self.model(self.front_end(audio))
        logits = torch.cat([out[name].float() for name in self.info.outputs], dim=-1)
        return torch.sigmoid(logits).cpu().numpy()  # (b, T_out, C * len(outputs))


def decoding_workers(reader: WindowReader, num_workers: int):
    """The items of ``reader`` decoded by ``num_workers`` DataLoader worker processes, each taking
    every ``num_workers``-th recording (items of different recordings interleave)."""
    loader = DataLoader(
        _WorkerShards(reader), batch_size=None, num_workers=num_workers, collate_fn=_as_is
    )
    return iter(loader)


class _WorkerShards(IterableDataset):
    """A :class:`WindowReader` whose DataLoader workers each read their share of recordings."""

    def __init__(self, reader: WindowReader):
        self.reader = reader

    def __iter__(self):
        worker = get_worker_info()
        if worker is None:
            return self.reader.shard(0, 1)
        return self.reader.shard(worker.id, worker.num_workers, in_worker=True)


def _as_is(item):
    """DataLoader ``collate_fn`` that leaves items as they are (no tensor conversion)."""
    return item


def embed_info(encoder, spec: ModelSpec) -> dict:
    """What embedding with ``encoder`` needs to know: ``sample_rate``, ``window_s``, ``hop_s`` (the
    front end's frame hop), ``patch_t`` and ``dim`` (plain JSON; also an embedding graph's
    ``biomae.embed_info``)."""
    return {
        "sample_rate": int(spec.front_end.sample_rate),
        "window_s": float(spec.window_s),
        "hop_s": float(spec.front_end.hop_s),
        "patch_t": int(encoder.config.patch_t),
        "dim": int(encoder.config.dim),
    }


class TorchWindowTokens:
    """A model file's encoder as ``windows (b, n_samples) float32 → tokens (b, grid_f, grid_t,
    D)`` float32 NumPy, run by torch (:class:`biomae.embed.Embedder`).

    Args:
        model_path: an exported encoder or a fine-tuned model (its encoder).
        device: "auto", "cpu", "cuda", ...
    """

    runtime = "torch"

    def __init__(self, model_path: str | Path, device: str = "auto"):
        from biomae.devices import resolve_device
        from biomae.models.files import load_encoder

        self.device = resolve_device(device)
        self.encoder, spec = load_encoder(model_path, device=self.device, what="model")
        self.front_end = FrontEnd(spec.front_end, self.encoder.config.patch_t, self.device)
        self.info = embed_info(self.encoder, spec)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        from biomae.models.heads import tokens_to_grid

        with torch.no_grad():
            spec = self.front_end(torch.from_numpy(np.ascontiguousarray(audio, np.float32)))
            tokens = self.encoder.forward_features(spec)  # (B, N, D)
            grid = self.encoder.grid(spec.shape[-1])
            return tokens_to_grid(tokens.float(), grid).cpu().numpy()  # (B, grid_f, grid_t, D)
