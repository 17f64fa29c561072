"""Embeddings of recordings for search and linear probes: ``biomae embed`` and ``biomae search``.

An :class:`Embedder` wraps an encoder — exported by ``biomae pretrain`` (``encoder.safetensors``) or
inside a fine-tuned model (``best.safetensors``), read by :func:`biomae.models.files.load_encoder`
— with the front end it was trained with (the file's spec). The
embedding of a span of audio is the mean of the encoder's output tokens over the span's time
patches (all frequency patches), a ``(D,)`` float32 vector:

- window level: each recording streams in windows of ``window_s`` every ``hop_s`` (integer sample
  offsets), one row per window;
- event level: for each event of a table, the window of ``window_s`` centred on the event (clipped
  to the recording), pooled over the time patches the event overlaps.

Tables are Parquet: ``recording, start_s, end_s, label, embedding`` (a list of float32), with the
model path and dimension in the file's metadata. Search ranks rows by cosine similarity.

The encoder runs on torch or, like annotating (:func:`biomae.onnx_scorer.choose_runtime`), on ONNX
Runtime: its graph (:func:`biomae.export.export_embedding_onnx`, front end included: windows in,
tokens on their patch grid out) is exported once into the cache, and no torch is imported.
Embeddings agree within 1e-3 (``tests/test_embed.py``). A ``window_s`` other than the model's runs
on torch (the graph's window is the model's).

The default model is the shipped embedding model (:data:`DEFAULT_EMBEDDING_MODEL`, trained with
SupCon + InfoNCE; its card is ``docs/embeddings.md``); ``"detector"`` (or ``"starter"``) names
the starter detector's encoder, any other value a model file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from biomae import audio as audio_io
from biomae.atomic_io import atomic_path

DEFAULT_EMBEDDING_MODEL = Path(__file__).resolve().parent / "data" / "embedding.safetensors"


def resolve_embedding_model(name: str | Path | None) -> Path:
    """None or ``"embedding"`` → :data:`DEFAULT_EMBEDDING_MODEL`; ``"detector"`` or
    ``"starter"`` → the starter detector; anything else is a path."""
    from biomae.starter import PACKAGED_MODEL  # no torch, unlike biomae.models.files

    if name is None or str(name) == "embedding":
        return DEFAULT_EMBEDDING_MODEL
    return PACKAGED_MODEL if str(name) in ("detector", "starter") else Path(name)


class Embedder:
    """Encoder + front end, from a ``.safetensors`` file (see the module docstring).

    Args:
        model_path: an encoder or fine-tuned model (``.safetensors``), or an embedding graph
            (``.onnx`` from :func:`biomae.export.export_embedding_onnx`).
        device: "auto", "cpu", "cuda", ... (torch).
        batch_size: windows per forward pass.
        window_s: window length (None: the model's).
        runtime: "auto", "torch" or "onnx" (:func:`biomae.onnx_scorer.choose_runtime`).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str = "auto",
        batch_size: int = 16,
        window_s: float | None = None,
        runtime: str = "auto",
    ):
        from biomae.onnx_scorer import choose_runtime, model_file

        self.model_path = resolve_embedding_model(model_path)
        if not model_file(self.model_path).is_file():
            raise FileNotFoundError(f"model {self.model_path} not found")
        if window_s is None:
            self.runtime, graph = choose_runtime(
                self.model_path, runtime, device, False, kind="embed"
            )
        elif runtime == "onnx" or self.model_path.suffix == ".onnx":
            raise ValueError(f"window_s={window_s}: an ONNX graph embeds windows of its model's "
                             "length; drop --window-s or use --runtime torch")  # fmt: skip
        else:
            self.runtime, graph = "torch", None
        if graph is not None:
            from biomae.onnx_scorer import OnnxWindowTokens

            self.tokens = OnnxWindowTokens(graph)
        else:  # torch: imported when used, so that `import biomae.embed` stays without it
            from biomae.torch_scorer import TorchWindowTokens

            self.tokens = TorchWindowTokens(self.model_path, device)
        info = self.tokens.info  # sample_rate, window_s, hop_s, patch_t, dim
        self.patch_t, self.hop_s = info["patch_t"], info["hop_s"]
        self.sample_rate = info["sample_rate"]
        self.window_s = window_s or info["window_s"]
        self.batch_size = batch_size
        self.dim = info["dim"]

    def patch_s(self) -> float:
        """Seconds of audio per time patch."""
        return self.patch_t * self.hop_s

    def embed_windows(self, path: str | Path, hop_s: float | None = None) -> pd.DataFrame:
        """One embedding per window of the recording (windows every ``hop_s``, default a window)."""

        window = round(self.window_s * self.sample_rate)
        rows, batch, spans = [], [], []
        for block in audio_io.stream(
            path, block_s=self.window_s, hop_s=hop_s or self.window_s, sample_rate=self.sample_rate
        ):
            padded = np.zeros(window, np.float32)
            padded[: len(block.audio)] = block.audio[:window]
            batch.append(padded)
            spans.append((block.start_sample, block.start_sample + min(len(block.audio), window)))
            if len(batch) == self.batch_size:
                rows += self._pool_windows(batch, spans, path)
                batch, spans = [], []
        if batch:
            rows += self._pool_windows(batch, spans, path)
        return pd.DataFrame(rows)

    def _pool_windows(self, batch, spans, path) -> list[dict]:
        grids = self.tokens(np.stack(batch))  # (B, grid_f, grid_t, D)
        rows = []
        for grid, (lo, hi) in zip(grids, spans, strict=True):
            n_patches = max(
                1, min(grid.shape[1], math.ceil((hi - lo) / self.sample_rate / self.patch_s()))
            )
            rows.append(
                {
                    "recording": str(path),
                    "start_s": lo / self.sample_rate,
                    "end_s": hi / self.sample_rate,
                    "label": "",
                    "embedding": grid[:, :n_patches].mean(axis=(0, 1)).astype(np.float32),
                }
            )
        return rows

    def embed_events(self, path: str | Path, events: pd.DataFrame) -> pd.DataFrame:
        """One embedding per event: a window centred on it, pooled over the patches it overlaps."""

        info = audio_io.info(path)
        rows = []
        for event in events.itertuples():
            centre_s = (event.start_s + event.end_s) / 2
            lo_s = min(
                max(0.0, centre_s - self.window_s / 2), max(0.0, info.duration_s - self.window_s)
            )
            n = min(
                round(self.window_s * info.sample_rate),
                info.n_samples - round(lo_s * info.sample_rate),
            )
            audio, _ = audio_io.load(
                path, start_s=lo_s, duration_s=n / info.sample_rate, sample_rate=self.sample_rate
            )
            padded = np.zeros(round(self.window_s * self.sample_rate), np.float32)
            padded[: len(audio)] = audio[: len(padded)]
            grid = self.tokens(padded[None])[0]  # (grid_f, grid_t, D)
            first = int((event.start_s - lo_s) // self.patch_s())
            last = math.ceil((event.end_s - lo_s) / self.patch_s())
            first, last = max(0, min(first, grid.shape[1] - 1)), max(1, min(last, grid.shape[1]))
            rows.append(
                {
                    "recording": str(path),
                    "start_s": float(event.start_s),
                    "end_s": float(event.end_s),
                    "label": str(event.label),
                    "embedding": grid[:, first : max(last, first + 1)]
                    .mean(axis=(0, 1))
                    .astype(np.float32),
                }
            )
        return pd.DataFrame(rows)


def write_embeddings(table: pd.DataFrame, path: str | Path, model_path: str | Path) -> Path:
    """Write an embedding table to Parquet atomically (model path and dimension in its metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dim = len(table["embedding"].iloc[0]) if len(table) else 0
    arrow = pa.table(
        {
            "recording": pa.array(table["recording"].astype(str).tolist()),
            "start_s": pa.array(table["start_s"].to_numpy(np.float64)),
            "end_s": pa.array(table["end_s"].to_numpy(np.float64)),
            "label": pa.array(table["label"].astype(str).tolist()),
            "embedding": pa.array(
                [np.asarray(e, np.float32) for e in table["embedding"]],
                type=pa.list_(pa.float32(), dim) if dim else pa.list_(pa.float32()),
            ),
        }
    )
    arrow = arrow.replace_schema_metadata({"biomae_model": str(model_path), "dim": str(dim)})
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)
    return Path(path)


def read_embeddings(path: str | Path) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """An embedding table, its (N, D) float32 matrix and its metadata."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    frame = table.drop(["embedding"]).to_pandas()
    matrix = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32).reshape(
        len(frame), -1
    )
    return frame, matrix, metadata


def search(query: np.ndarray, matrix: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the ``k`` rows of ``matrix`` (N, D) nearest
    ``query`` (D,)."""
    q = query / (np.linalg.norm(query) + 1e-12)
    m = matrix / (np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-12)
    similarity = m @ q  # (N,)
    order = np.argsort(-similarity, kind="stable")[:k]
    return order, similarity[order]
