"""A detection model as one ONNX graph, for ONNX Runtime (no torch at inference).

:func:`export_onnx` traces the whole path of a window — the log-mel front end (``torch.stft``
exports as the ONNX ``STFT`` operator), per-clip normalisation, encoder, head and sigmoid — into
one graph:

- input ``audio``: ``(batch, window_samples)`` float32 at the model's rate (the batch is dynamic);
- output ``probs``: ``(batch, T_out, C * len(outputs))`` float32, activity [+ onset + offset]
  side by side, exactly what :meth:`biomae.infer.Scorer.window_probs` returns;
- metadata ``biomae.info``: what running it needs (:class:`biomae.infer.ModelInfo` JSON: rate,
  window, frame hop, outputs, labels, decode settings with the calibrated threshold, band), read
  by ONNX Runtime alone, so the graph is a model file of its own (``biomae annotate --model
  M.onnx``) and running it imports no torch; also the model file's spec
  (:class:`biomae.models.files.ModelSpec` JSON, ``biomae.spec``), ``biomae.outputs``,
  ``biomae.frame_hop_s`` and ``biomae.source`` (the model it came from).

:func:`export_embedding_onnx` writes the encoder's path the same way for ``biomae embed``: audio
windows in, the encoder's tokens on their patch grid out (``biomae.embed_info`` in the metadata).

``int8=True`` quantises the weights of the matrix multiplications to int8 after export (ONNX
Runtime's dynamic quantisation: activations quantised per batch at run time). fp32 matches torch
within 1e-5 in frame scores (``tests/test_export.py``); int8 trades accuracy for speed (figures in
docs/edge.md).

Exporting needs torch and the ``onnx`` extra (``pip install 'biomae[onnx]'``: onnxruntime, onnx,
onnxscript for torch's exporter); running needs onnxruntime only.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from biomae.infer import ModelInfo

ONNX_OPSET = 18  # STFT needs 17; 18 is torch's exporter's default


class WindowProbs(nn.Module):
    """Audio windows → sigmoid frame scores: front end + model + sigmoid, for export."""

    def __init__(self, model: nn.Module, spec, outputs: tuple[str, ...]):
        super().__init__()
        from biomae.features import Spectrogram

        self.model, self.outputs = model, outputs
        self.spectrogram = Spectrogram(spec.front_end.build_config())
        self.front_end = spec.front_end
        self.patch_t = spec.encoder.patch_t

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = self.spectrogram(audio)  # (B, n_mels, frames)
        n_frames = spec.shape[-1] - spec.shape[-1] % self.patch_t  # as FrontEnd crops
        out = self.model(self.front_end.normalize(spec[..., :n_frames]))  # dB or PCEN
        logits = torch.cat([out[name].float() for name in self.outputs], dim=-1)
        return torch.sigmoid(logits)  # (B, T_out, C * len(outputs))


def export_onnx(model_path: str | os.PathLike, out_path: str | os.PathLike, int8: bool = False):
    """Write the detection model at ``model_path`` (a file or ``starter``) as an ONNX graph at
    ``out_path`` (atomically). Returns the path written.

    Raises:
        ImportError: onnx / onnxscript (export) or onnxruntime (``int8``) missing: install
            ``biomae[onnx]``.
        ValueError, FileNotFoundError: as :func:`biomae.torch_scorer.load_detection_model`.
    """
    from biomae.torch_scorer import load_detection_model

    _check_extras(int8)
    model, spec = load_detection_model(model_path, torch.device("cpu"))
    model.eval()
    outputs = tuple(model.head.config.outputs)
    module = WindowProbs(model, spec, outputs).eval()
    meta = {
        "biomae.info": ModelInfo.of_spec(spec, model.head).to_json(),
        "biomae.spec": spec.to_json(),
        "biomae.outputs": json.dumps(list(outputs)),
        "biomae.frame_hop_s": repr(float(model.head.frame_hop_s)),
        "biomae.source": str(model_path),
        "biomae.int8": json.dumps(int8),
    }
    return _write_graph(module, spec.window_samples, "probs", meta, out_path, int8)


class WindowTokens(nn.Module):
    """Audio windows → the encoder's tokens on their patch grid, for export (``biomae embed``)."""

    def __init__(self, encoder: nn.Module, spec):
        super().__init__()
        from biomae.features import Spectrogram

        self.encoder = encoder
        self.spectrogram = Spectrogram(spec.front_end.build_config())
        self.patch_t = encoder.config.patch_t

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        from biomae.features import normalize_per_clip
        from biomae.models.heads import tokens_to_grid

        spec = self.spectrogram(audio)  # (B, n_mels, frames)
        n_frames = spec.shape[-1] - spec.shape[-1] % self.patch_t  # as FrontEnd crops
        spec = normalize_per_clip(spec[..., :n_frames])
        tokens = self.encoder.forward_features(spec)  # (B, N, D)
        return tokens_to_grid(tokens.float(), self.encoder.grid(n_frames))  # (B, gf, gt, D)


def export_embedding_onnx(model_path: str | os.PathLike, out_path: str | os.PathLike):
    """Write the encoder of the model at ``model_path`` (an exported encoder or any fine-tuned
    model) as an ONNX graph at ``out_path`` (atomically): input ``audio`` ``(batch,
    window_samples)`` at the model's rate and window, output ``tokens`` ``(batch, grid_f, grid_t,
    D)`` float32, what :meth:`biomae.embed.Embedder.tokens` returns. Metadata ``biomae.embed_info``
    (JSON: ``sample_rate``, ``window_s``, ``hop_s``, ``patch_t``, ``dim``). Returns the path.

    Raises:
        ImportError: onnx / onnxscript missing: install ``biomae[onnx]``.
        ValueError, FileNotFoundError: as :func:`biomae.models.files.load_encoder`.
    """
    from biomae.models.files import load_encoder
    from biomae.torch_scorer import embed_info

    _check_extras(int8=False)
    encoder, spec = load_encoder(model_path, device="cpu", what="model")
    module = WindowTokens(encoder.eval(), spec).eval()
    info = embed_info(encoder, spec)
    window_samples = round(spec.window_s * spec.front_end.sample_rate)
    meta = {"biomae.embed_info": json.dumps(info), "biomae.source": str(model_path)}
    return _write_graph(module, window_samples, "tokens", meta, out_path, int8=False)


def _check_extras(int8: bool) -> None:
    for name in ("onnx", "onnxscript") + (("onnxruntime",) if int8 else ()):
        try:
            __import__(name)
        except ImportError as err:
            raise ImportError(
                f"biomae export --onnx needs {name}: pip install 'biomae[onnx]'"
            ) from err


def _write_graph(module, window_samples: int, output: str, meta: dict, out_path, int8: bool):
    """Trace ``module`` (``audio (batch, window_samples)`` → ``output``) into an ONNX graph with
    ``meta`` as its metadata, int8 weights when asked, written atomically at ``out_path``."""
    import onnx

    example = torch.zeros(2, window_samples)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".export-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=["audio"],
            output_names=[output],
            dynamic_shapes={"audio": {0: torch.export.Dim("batch")}},
            opset_version=ONNX_OPSET,
            verbose=False,
        )
        program.save(str(fp32))
        graph = onnx.load(str(fp32))
        del graph.metadata_props[:]
        for key, value in meta.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(fp32))
        final = fp32
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            final = Path(tmp) / "int8.onnx"
            quantize_dynamic(str(fp32), str(final), weight_type=QuantType.QInt8)
        os.replace(final, out_path)
    return out_path
