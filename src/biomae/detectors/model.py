"""Annotating with a trained model: :class:`ModelDetector`, the detector behind
``biomae annotate --model PATH`` (a fine-tuned ``best.safetensors`` from
``biomae finetune --task detect``, or ``starter``).

Per recording:

1. :class:`biomae.infer.Scorer` gives the model's averaged frame scores (windows of the model's
   ``window_s`` with ``overlap``, batched across recordings, bf16 where enabled; the path that
   fine-tuning validates and calibrates the threshold on), run by torch or by ONNX Runtime on
   the model's exported graph (``runtime``: :func:`biomae.onnx_scorer.choose_runtime`; on ONNX
   Runtime no torch is imported).
2. ``biomae.decode.decode_events`` turns the frame scores into events (the model's own decode
   settings, from its file's spec, unless overridden); each event's frequency box is then measured
   from a linear spectrogram of the event and ``box_context_s`` of audio around it
   (``biomae.boxes.frequency_boxes``), read back from the file — memory stays bounded.
3. The shared post-processing (:mod:`biomae.detectors.postprocess`) applies.

Ultrasonic recordings: ``time_expansion = k`` plays the recording k times slower, as bat detectors
do; times are mapped back to real seconds and frequencies to real Hz in the output.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from biomae import audio as audio_io
from biomae.annotations.schema import empty_events
from biomae.audio import AudioInfo
from biomae.boxes import frequency_boxes
from biomae.decode import decode_events
from biomae.detectors.postprocess import PostProcess
from biomae.devices import bf16_is_fast
from biomae.infer import ModelInfo, Scorer, WindowScorer
from biomae.onnx_scorer import RUNTIMES, OnnxWindowScorer, choose_runtime
from biomae.spectral import power_spectrogram


@dataclass
class InferConfig:
    """How a model is run over recordings.

    Attributes:
        overlap: fraction of a window shared with the next, in [0, 1).
        batch_size: windows per forward pass.
        device: "auto" (CUDA when available), "cpu", "cuda", "cuda:1", …
        bf16: bf16 autocast; None = auto (:func:`bf16_is_fast`): on CUDA and on CPUs with AMX
            only, where it is faster with the same events; fp32 elsewhere.
        time_expansion: play the recording this many times slower (ultrasonic recordings).
        boxes: measure a frequency box for each event.
        box_context_s: audio either side of an event used to estimate the noise floor of its box.
        box_min_hz: frequencies below this (real Hz) are left out of boxes: wind and handling
            rumble vary too much for a noise floor (the energy detector's band starts there too).
        threshold_on: override of the model's decode threshold (None keeps the model's).
        num_workers: DataLoader worker processes decoding recordings (0: one background thread).
        runtime: what runs the model: "auto" (ONNX Runtime on the CPU in fp32 when installed,
            exporting the graph once; torch otherwise), "torch" or "onnx"
            (:func:`biomae.onnx_scorer.choose_runtime`; ``$BIOMAE_RUNTIME`` replaces auto's
            choice for a ``.safetensors`` model).
        post: the post-processing every detector shares (:mod:`biomae.detectors.postprocess`:
            band, merge gap, minimum duration, label), applied to the events with their boxes;
            None leaves a step out (merge gap and minimum duration: the model's own decode
            settings apply instead).
    """

    overlap: float = 0.0
    batch_size: int = 16
    device: str = "auto"
    bf16: bool | None = None
    time_expansion: float = 1.0
    boxes: bool = True
    box_context_s: float = 0.5
    box_min_hz: float = 150.0
    threshold_on: float | None = None
    num_workers: int = 0
    runtime: str = "auto"
    post: PostProcess = field(default_factory=PostProcess)

    def __post_init__(self) -> None:
        if not self.boxes and (self.post.low_hz is not None or self.post.high_hz is not None):
            raise ValueError("low_hz / high_hz keep events by their boxes: they need boxes=True")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must lie in [0, 1), got {self.overlap}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.time_expansion > 0:
            raise ValueError(f"time_expansion must be > 0, got {self.time_expansion}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")


class ModelDetector:
    """A fine-tuned detection model as an annotation detector (see the module docstring).

    Args:
        model_path: a ``.safetensors`` written by ``biomae finetune --task detect``.
        config: how it runs; the default :class:`InferConfig`.
        name: the detector's name in ``run.json`` and ``summary.csv`` (``starter-model`` for the
            model ``biomae annotate`` uses by default).
    """

    def __init__(
        self, model_path: str | Path, config: InferConfig | None = None, name: str = "model"
    ):
        self.name = name
        self.config = config or InferConfig()
        self.model_path = Path(model_path)
        self.runtime, graph = choose_runtime(
            model_path, self.config.runtime, self.config.device, self.config.bf16
        )
        self.windows = self._windows(graph)  # torch's or ONNX Runtime's (biomae.infer.Scorer)
        self.bf16 = getattr(self.windows, "bf16", False)
        self.info: ModelInfo = self.windows.info
        self.decode_config = self.info.decode
        if self.config.threshold_on is not None:
            off = min(self.decode_config.threshold_off or 1.0, self.config.threshold_on)
            self.decode_config = replace(
                self.decode_config, threshold_on=self.config.threshold_on, threshold_off=off
            )
        # a given merge gap / minimum duration replaces the model's own: the decoder then keeps
        # every run of frames and the shared post-processing applies the given value
        for name in ("merge_gap_s", "min_duration_s"):
            if getattr(self.config.post, name) is not None:
                self.decode_config = replace(self.decode_config, **{name: 0.0})
        self.post = self.config.post
        self.labels = list(self.info.labels) or ["call"]  # class-agnostic: "call"
        self.scorer = Scorer(
            self.windows,
            batch_size=self.config.batch_size,
            overlap=self.config.overlap,
            time_expansion=self.config.time_expansion,
            num_workers=self.config.num_workers,
        )
        self.outputs = self.scorer.outputs
        self.sample_rate = self.scorer.sample_rate
        self.window_samples = self.scorer.window_samples

    def _windows(self, graph: Path | None) -> WindowScorer:
        """The model's runtime: its exported ``graph`` on ONNX Runtime, else torch."""
        if graph is not None:
            return OnnxWindowScorer(graph)
        # torch: imported only here, so that annotating on ONNX Runtime stays without it
        from biomae.devices import resolve_device
        from biomae.torch_scorer import TorchWindowScorer, load_detection_model

        device = resolve_device(self.config.device)
        model, spec = load_detection_model(self.model_path, device)
        bf16 = bf16_is_fast(device.type) if self.config.bf16 is None else self.config.bf16
        return TorchWindowScorer(model, spec, device, bf16)

    def name_for(self, path: str | Path, info: AudioInfo | None = None) -> str:
        """The detector that annotates ``path``: this model, whatever the recording."""
        return self.name

    def params(self) -> dict:
        settings = asdict(self.config)  # flat: post's fields beside the others, as in run.json
        post = settings.pop("post")
        return {
            "detector": self.name,
            "model": str(self.model_path),
            "sample_rate": self.sample_rate,
            "window_s": self.window_samples / self.sample_rate,
            "labels": self.labels,
            "decode": asdict(self.decode_config),
            **settings,
            **post,
            "bf16": self.bf16,
            "runtime": self.runtime,  # the one that ran ("torch" or "onnx"), not "auto"
        }

    def frame_scores(
        self, path: str | Path, info: AudioInfo | None = None
    ) -> tuple[np.ndarray, float, int]:
        """Averaged frame probabilities ``(n_frames, C * len(outputs))`` of a whole recording, the
        frame hop in real seconds, and the stream's sample rate (:meth:`Scorer.frame_scores`)."""
        return self.scorer.frame_scores(path, info)

    def detect_file(
        self, path: str | Path, recording: str | None = None, info: AudioInfo | None = None
    ) -> pd.DataFrame:
        """Events in the recording at ``path`` (real seconds and Hz); ``info``: its header, when
        read already."""
        info = audio_io.info(path) if info is None else info
        return self._events(path, self.frame_scores(path, info), recording, info)

    def detect_many(
        self, paths: Iterable[str | Path], infos: Sequence[AudioInfo | None] | None = None
    ) -> Iterator[tuple[str | Path, object]]:
        """``(path, events)`` per recording in input order, windows of consecutive recordings
        sharing batches; ``(path, exception)`` for a recording that failed. ``infos``: each
        path's header (or None), when read already."""
        paths = list(paths)
        infos = [None] * len(paths) if infos is None else list(infos)
        scored = self.scorer.frame_scores_many(paths, infos)
        for info, (path, result) in zip(infos, scored, strict=True):
            if isinstance(result, Exception):
                yield path, result
                continue
            try:
                yield path, self._events(path, result, None, info)
            except Exception as err:
                yield path, err

    def _events(self, path, result, recording: str | None, info: AudioInfo | None):
        scores, frame_hop_s, _ = result
        channels = self.scorer.split(scores)
        events = decode_events(
            channels["activity"],
            frame_hop_s,
            self.labels,
            self.decode_config,
            onset=channels.get("onset"),
            offset=channels.get("offset"),
            recording=str(path) if recording is None else recording,
            source="biomae-model",
        )
        if not len(events):
            return empty_events()
        # the last frame may reach past the last sample: events end where the recording ends
        info = audio_io.info(path) if info is None else info
        events["end_s"] = events["end_s"].clip(upper=info.duration_s)
        # frame arithmetic in floats: round to the microsecond (0.94, not 0.9400000000000001)
        events[["start_s", "end_s"]] = events[["start_s", "end_s"]].round(6)
        if self.config.boxes:
            boxes = self._boxes(
                path, info, events["start_s"].to_numpy(), events["end_s"].to_numpy()
            )
            events["low_hz"], events["high_hz"] = boxes[:, 0], boxes[:, 1]
        return self.post.apply(events)

    def _boxes(self, path, info, starts_s: np.ndarray, ends_s: np.ndarray, load=None) -> np.ndarray:
        """``(n, 2)`` frequency boxes (real Hz) of the events, each measured from its audio and
        ``box_context_s`` around it (the noise floor). Events close together share one read and
        one spectrogram of at most ``BOX_SPAN_S`` seconds, so memory stays bounded and a busy
        recording is not decoded once per event. ``load`` reads the audio (default
        :func:`biomae.audio.load` with the header already read; live mode reads its own recent
        audio)."""
        if load is None:
            load = functools.partial(audio_io.load, info=info)
        context_s, fraction = self.config.box_context_s, self.decode_config.energy_fraction
        lo_s = np.maximum(0.0, starts_s - context_s)
        hi_s = np.minimum(info.duration_s, ends_s + context_s)
        boxes = np.full((len(starts_s), 2), np.nan)
        order = np.argsort(lo_s, kind="stable")
        lo_sorted, hi_sorted = lo_s[order], hi_s[order]
        hop_s = BOX_HOP_S / self.config.time_expansion  # finer for time-expanded calls
        i = 0
        while i < len(order):  # one group: events whose context fits in one span from order[i]
            group_lo = lo_sorted[i]
            reach = int(np.searchsorted(lo_sorted, group_lo + BOX_SPAN_S, side="right"))
            fits = np.maximum.accumulate(hi_sorted[i:reach]) - group_lo <= BOX_SPAN_S
            j = i + 1 + int(np.argmin(np.append(fits[1:], False)))  # the first that does not
            group_hi = hi_sorted[i:j].max()
            audio, rate = load(path, start_s=group_lo, duration_s=group_hi - group_lo)
            power, hop, edges_hz = _power_spectrogram(audio, rate, hop_s)  # (F, T)
            low_bin = int(np.searchsorted(edges_hz[:-1], self.config.box_min_hz, side="left"))
            low_bin = min(low_bin, power.shape[0] - 1)
            power, edges_hz = power[low_bin:], edges_hz[low_bin:]  # bins above box_min_hz
            fps = rate / hop  # frames per second
            events = order[i:j]
            n_frames = power.shape[1]
            # (context start, event start, event end, context end) in group frames, per event
            c_lo = np.minimum(n_frames - 1, np.rint((lo_s[events] - group_lo) * fps)).astype(int)
            c_hi = np.rint((hi_s[events] - group_lo) * fps).astype(int)
            c_hi = np.minimum(n_frames, np.maximum(c_lo + 1, c_hi))
            into_s = starts_s[events] - lo_s[events]
            first = c_lo + np.minimum(c_hi - c_lo - 1, np.rint(into_s * fps).astype(int))
            last = c_lo + np.rint((ends_s[events] - lo_s[events]) * fps).astype(int)
            last = np.minimum(c_hi, np.maximum(first + 1, last))
            spans = np.stack([c_lo, first, last, c_hi], axis=1)  # (E, 4)
            # each event's noise floor: the per-bin median of context frames spread evenly
            # before and after it (biomae.boxes), all the group's events in one call
            boxes[events] = frequency_boxes(power, edges_hz, spans, fraction)
            i = j
        return boxes


BOX_SPAN_S = 60.0  # longest stretch of audio read at once to measure frequency boxes
BOX_HOP_S = 0.01  # frame hop of the box spectrogram (real time: divided by time_expansion)


def _power_spectrogram(
    audio: np.ndarray, rate: int, hop_s: float
) -> tuple[np.ndarray, int, np.ndarray]:
    """``(F, T)`` linear power at ``hop_s`` frames with windows of ~1.6 hops (a power of two, at
    least 64), the hop in samples and the ``(F + 1,)`` bin edges in Hz."""
    hop = max(1, round(hop_s * rate))
    n_fft = int(2 ** math.ceil(math.log2(max(64, 1.6 * hop))))
    power = power_spectrogram(audio, n_fft, hop)  # (F, T)
    edges_hz = (np.arange(power.shape[0] + 1) - 0.5).clip(0) * rate / n_fft
    edges_hz[-1] = rate / 2
    return power, hop, edges_hz
