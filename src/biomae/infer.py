"""Running a model over long recordings: windows → batches → averaged frame scores.

:class:`Scorer` is the one path from a recording to a model's frame scores; annotating
(:class:`biomae.detectors.model.ModelDetector`, ``biomae annotate --model``), fine-tuning
validation and threshold calibration (:mod:`biomae.train.tasks`) and the benchmarks all use it,
so the decode threshold calibrated in training is the one that ships. Per recording:

1. The recording streams (``biomae.audio.stream``, bounded memory at any length) in windows of the
   model's ``window_s`` (its spec) with ``overlap`` (a fraction of the window), resampled to the
   model's rate. The hop is a whole number of the head's output frames, so every window's frame
   ``j`` is the global frame ``start_sample / frame_hop_samples + j`` exactly (integer arithmetic,
   no drift).
2. Windows decode in a background thread (:func:`prefetch`), or with ``num_workers > 0`` in torch
   DataLoader worker processes that each take every ``num_workers``-th recording (for machines
   with many cores beside a GPU), while the model runs; they are batched
   (``batch_size``; windows of consecutive recordings share batches, so many short files fill them
   too), run by the model's runtime (:class:`WindowScorer`: torch — front end + encoder + head,
   bf16 autocast where enabled — or the exported ONNX graph of the same), and the sigmoid
   scores of overlapping windows are averaged per frame.
   A short last window is padded by looping its own audio; frames past the recording's end are
   dropped.

Ultrasonic recordings: ``time_expansion = k`` plays the recording k times slower, as bat detectors
do, so a model trained at 32 kHz hears 0–16·k kHz.

Nothing here imports :mod:`biomae.train`, nor torch: the torch runtime
(:mod:`biomae.torch_scorer`) is imported only when a torch model runs, so annotating on ONNX Runtime
(:mod:`biomae.onnx_scorer`) never loads torch. :class:`ModelInfo` is what either runtime says of
its model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np

from biomae import audio as audio_io
from biomae.decode import DecodeConfig

if TYPE_CHECKING:
    from biomae.audio import AudioInfo
    from biomae.models.files import ModelSpec


@dataclass(frozen=True)
class ModelInfo:
    """What running a detection model needs to know of it, without torch: from a model file's
    spec (:meth:`of_spec`) or from an exported graph's metadata (:meth:`from_json`).

    Attributes:
        sample_rate: the model's rate in Hz; recordings are resampled to it.
        window_s: the window it runs on, in seconds.
        frame_hop_s: the head's output frame hop, in seconds at the model's rate.
        outputs: the head's outputs, side by side in its scores: activity [, onset, offset].
        n_classes: classes per output.
        labels: class names (empty: class-agnostic, one "call" class).
        decode: its decode settings, the calibrated threshold included.
        band_hz: its front end's ``(low, high)`` band in Hz.
        scale: its front end's frequency scale, "mel" or "linear".
    """

    sample_rate: int
    window_s: float
    frame_hop_s: float
    outputs: tuple[str, ...]
    n_classes: int
    labels: tuple[str, ...]
    decode: DecodeConfig
    band_hz: tuple[float, float]
    scale: str = "mel"

    @property
    def window_samples(self) -> int:
        """The window in samples at the model's rate (as :class:`ModelSpec` counts it)."""
        return round(self.window_s * self.sample_rate)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        raw = json.loads(text)
        return cls(
            **{k: v for k, v in raw.items() if k not in ("decode", "outputs", "labels", "band_hz")},
            outputs=tuple(raw["outputs"]),
            labels=tuple(raw["labels"]),
            decode=DecodeConfig(**raw["decode"]),
            band_hz=(float(raw["band_hz"][0]), float(raw["band_hz"][1])),
        )

    @classmethod
    def of_spec(cls, spec: ModelSpec, head) -> ModelInfo:
        """The info of a loaded model's spec and its detection head (``frame_hop_s``,
        ``config.outputs``, ``config.n_classes``)."""
        front = spec.front_end.build_config()
        return cls(
            sample_rate=int(front.sample_rate),
            window_s=float(spec.window_s),
            frame_hop_s=float(head.frame_hop_s),
            outputs=tuple(head.config.outputs),
            n_classes=int(head.config.n_classes),
            labels=tuple(spec.labels),
            decode=spec.decode,
            band_hz=front.band_hz,
            scale=front.scale,
        )


class WindowScorer(Protocol):
    """A model's runtime: ``(b, window_samples)`` float32 windows at its rate → sigmoid scores
    ``(b, T_out, n_classes * len(outputs))`` float32 NumPy, activity [+ onset + offset] side by
    side. :class:`biomae.torch_scorer.TorchWindowScorer` (torch) and
    :class:`biomae.onnx_scorer.OnnxWindowScorer` (ONNX Runtime) are the two."""

    info: ModelInfo
    runtime: str  # "torch" or "onnx"

    def __call__(self, windows: np.ndarray) -> np.ndarray: ...


def prefetch(iterator: Iterator, depth: int = 8) -> Iterator:
    """Run ``iterator`` in a background thread, ``depth`` items ahead, preserving order.

    Decoding and resampling (libsndfile, soxr) and the model (torch) release the GIL, so the next
    windows decode while the current batch runs. An exception in the iterator is re-raised here.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(done)
        except BaseException as err:  # handed to the consumer
            items.put(err)

    thread = threading.Thread(target=produce, daemon=True, name="biomae-prefetch")
    thread.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class Scorer:
    """A model run over whole recordings: windows → batches → averaged frame scores (the
    module docstring). The one path from a recording to frame scores — annotating
    (:class:`biomae.detectors.model.ModelDetector`), fine-tuning validation and threshold
    calibration (:mod:`biomae.train.tasks`) and the benchmarks all score through it.

    Args:
        model: encoder + head (:class:`biomae.models.files.TaskModel`) on ``device`` in eval mode,
            run by torch (with ``spec``); or, with ``spec`` None, a :class:`WindowScorer` that
            runs itself (the ONNX one of :mod:`biomae.onnx_scorer`; no torch is imported).
        spec: the torch model's spec (front end, window).
        device: where the torch model runs.
        bf16: bf16 autocast of the torch model.
        batch_size: windows per forward pass.
        overlap: fraction of a window shared with the next, in [0, 1).
        time_expansion: play recordings this many times slower (ultrasonic recordings).
        num_workers: DataLoader worker processes decoding recordings (0: a background thread;
            workers need torch).
    """

    def __init__(
        self,
        model,
        spec: ModelSpec | None = None,
        device="cpu",
        bf16: bool = False,
        batch_size: int = 16,
        overlap: float = 0.0,
        time_expansion: float = 1.0,
        num_workers: int = 0,
    ):
        if spec is not None:
            from biomae.torch_scorer import TorchWindowScorer  # imports torch

            model = TorchWindowScorer(model, spec, device, bf16)
        self.windows: WindowScorer = model
        self.batch_size, self.time_expansion, self.num_workers = (
            batch_size, time_expansion, num_workers
        )  # fmt: skip
        info = model.info
        self.outputs = info.outputs  # activity [, onset, offset]
        self.n_channels = info.n_classes * len(self.outputs)
        self.sample_rate = info.sample_rate
        self.window_samples = info.window_samples
        frame_hop = info.frame_hop_s * self.sample_rate
        if abs(frame_hop - round(frame_hop)) > 1e-6:
            raise ValueError(f"head frame hop {frame_hop} samples is not whole")
        self.frame_hop_samples = round(frame_hop)
        hop_frames = max(1, round(self.window_samples * (1 - overlap) / frame_hop))
        self.hop_samples = hop_frames * self.frame_hop_samples

    def split(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        """``{output: (n_frames, C)}`` of the side-by-side ``(n_frames, C * len(outputs))``."""
        return dict(zip(self.outputs, np.split(scores, len(self.outputs), axis=1), strict=True))

    def window_probs(self, windows: np.ndarray) -> np.ndarray:
        """Sigmoid scores ``(b, T_out, C * len(outputs))`` (activity [+ onset + offset] side by
        side) of ``(b, window_samples)`` float32 windows, by the model's runtime."""
        return self.windows(windows)

    def frame_scores(
        self, path: str | Path, info: AudioInfo | None = None
    ) -> tuple[np.ndarray, float, int]:
        """Averaged frame probabilities ``(n_frames, C)`` of a whole recording, the frame hop in
        real seconds, and the stream's sample rate (real-time samples per second). ``info``: the
        recording's header (:func:`biomae.audio.info`) when read already."""
        [(_, result)] = list(self.frame_scores_many([path], [info]))
        if isinstance(result, Exception):
            raise result
        return result

    def frame_scores_many(
        self, paths: Iterable[str | Path], infos: Sequence[AudioInfo | None] | None = None
    ) -> Iterator[tuple[str | Path, object]]:
        """``(path, (scores, frame_hop_s, stream_rate))`` for each recording, in order, with windows
        of consecutive recordings sharing batches (many short files fill batches too). A recording
        that fails to decode yields ``(path, exception)`` and the others go on. ``infos``: each
        path's header (or None: read when its turn comes), when read already."""
        open_recordings: dict[int, _Scores] = {}  # by input index, until all its windows ran
        batch: list[tuple[int, int, np.ndarray]] = []  # (index, start sample, window)
        next_out = 0  # the next input index to hand out, so results come in input order
        finished: dict[int, tuple[str | Path, object]] = {}

        def flush() -> None:
            probs = self.window_probs(np.stack([w for _, _, w in batch]))
            for (index, start, _), window_probs in zip(batch, probs, strict=True):
                open_recordings[index].add(start // self.frame_hop_samples, window_probs)
            batch.clear()

        def ready() -> Iterator[tuple[str | Path, object]]:
            nonlocal next_out
            for index, rec in list(open_recordings.items()):
                if rec.read_all and not any(i == index for i, _, _ in batch):
                    finished[index] = (rec.path, rec.result())
                    del open_recordings[index]
            while next_out in finished:
                yield finished.pop(next_out)
                next_out += 1

        for index, path, item in self._decoded(paths, infos):
            if isinstance(item, _Open):
                open_recordings[index] = _Scores(path, self.n_channels, *item)
            elif isinstance(item, Exception):
                open_recordings.pop(index, None)
                batch[:] = [b for b in batch if b[0] != index]
                finished[index] = (path, item)
            elif item is None:
                open_recordings[index].read_all = True
            else:
                batch.append((index, *item))
                if len(batch) == self.batch_size:
                    flush()
            yield from ready()
        if batch:
            flush()
        yield from ready()

    def _decoded(self, paths, infos=None) -> Iterator:
        """The :class:`WindowReader` items of ``paths``, decoded ahead in a background thread or,
        with ``num_workers``, in DataLoader worker processes that each take every
        ``num_workers``-th recording (items of different recordings then interleave, which
        :meth:`frame_scores_many` sorts out by recording index)."""
        reader = WindowReader(
            list(paths),
            round(self.sample_rate * self.time_expansion),
            self.window_samples,
            self.hop_samples,
            self.frame_hop_samples,
            infos,
        )
        if self.num_workers == 0:
            return prefetch(iter(reader))
        from biomae.torch_scorer import decoding_workers  # imports torch

        return decoding_workers(reader, self.num_workers)


class _Open(NamedTuple):
    """A recording's first item: what its score buffer needs."""

    n_frames: int
    frame_hop_s: float
    stream_rate: int


class WindowReader:
    """The windows of recordings as ``(index, path, item)``: per recording an :class:`_Open`, its
    windows as ``(start_sample, window (window_samples,) float32)``, then ``None``; or the
    exception that stopped its decoding (the other recordings go on). :meth:`shard` reads only
    the recordings whose index falls to one of several DataLoader workers.

    A short last window is padded by looping its own audio (silence would skew the per-window
    normalisation and read as a call or a gap). ``infos``: each path's header (or None), when
    read already.
    """

    def __init__(
        self, paths, stream_rate, window_samples, hop_samples, frame_hop_samples, infos=None
    ):
        self.paths, self.stream_rate = paths, stream_rate
        self.infos = [None] * len(paths) if infos is None else list(infos)
        self.window_samples, self.hop_samples = window_samples, hop_samples
        self.frame_hop_samples = frame_hop_samples

    def fill(self, audio: np.ndarray) -> np.ndarray:
        if len(audio) >= self.window_samples:
            return np.ascontiguousarray(audio[: self.window_samples], dtype=np.float32)
        if len(audio) == 0:
            return np.zeros(self.window_samples, dtype=np.float32)
        return np.pad(audio, (0, self.window_samples - len(audio)), mode="wrap").astype(np.float32)

    def __iter__(self):
        return self.shard(0, 1)

    def shard(self, share: int, n_shares: int, in_worker: bool = False) -> Iterator:
        """The items of the recordings whose index is ``share`` modulo ``n_shares``; ``in_worker``:
        errors made picklable for the trip from a worker process."""
        rate = self.stream_rate
        for index, (path, info) in enumerate(zip(self.paths, self.infos, strict=True)):
            if index % n_shares != share:
                continue
            try:
                info = audio_io.info(path) if info is None else info
                n_stream = math.ceil(info.n_samples * rate / info.sample_rate)
                n_frames = max(1, math.ceil(n_stream / self.frame_hop_samples))
                yield index, path, _Open(n_frames, self.frame_hop_samples / rate, rate)
                blocks = audio_io.stream(
                    path,
                    block_s=self.window_samples / rate,
                    hop_s=self.hop_samples / rate,
                    sample_rate=rate if rate != info.sample_rate else None,
                    info=info,
                )
                for block in blocks:
                    yield index, path, (block.start_sample, self.fill(block.audio))
                yield index, path, None
            except Exception as err:  # reported for this recording; the others go on
                yield index, path, _picklable(err) if in_worker else err


def _picklable(err: Exception) -> Exception:
    """``err`` if it survives the trip from a worker process, else a RuntimeError with its text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:
        return RuntimeError(f"{type(err).__name__}: {err}")


class _Scores:
    """Running sums of one recording's overlapping window scores."""

    def __init__(self, path, n_classes: int, n_frames: int, frame_hop_s: float, stream_rate: int):
        self.path, self.frame_hop_s, self.stream_rate = path, frame_hop_s, stream_rate
        self.total = np.zeros((n_frames, n_classes), dtype=np.float64)
        self.count = np.zeros((n_frames, 1), dtype=np.float64)
        self.read_all = False

    def add(self, first_frame: int, probs: np.ndarray) -> None:
        keep = min(len(probs), len(self.total) - first_frame)
        self.total[first_frame : first_frame + keep] += probs[:keep]
        self.count[first_frame : first_frame + keep] += 1

    def result(self) -> tuple[np.ndarray, float, int]:
        return self.total / np.maximum(self.count, 1), self.frame_hop_s, self.stream_rate
