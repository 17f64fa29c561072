"""Annotating with a trained model: long recordings → windows → batches → averaged frame scores →
events with frequency boxes.

:class:`ModelDetector` is the detector behind ``biomae annotate --model PATH`` (a fine-tuned
``best.safetensors`` from ``biomae finetune --task detect``). Per recording:

1. The recording streams (``biomae.audio.stream``, bounded memory at any length) in windows of the
   model's ``data.window_s`` with ``overlap`` (a fraction of the window), resampled to the model's
   rate. The hop is a whole number of the head's output frames, so every window's frame ``j`` is the
   global frame ``start_sample / frame_hop_samples + j`` exactly (integer arithmetic, no drift).
2. Windows decode in a background thread (:func:`prefetch`), or with ``num_workers > 0`` in torch
   DataLoader worker processes that each take every ``num_workers``-th recording (for machines
   with many cores beside a GPU), while the model runs; they are batched
   (``batch_size``; windows of consecutive recordings share batches, so many short files fill them
   too), run through front end + encoder + detection head (bf16 autocast where enabled), and the
   sigmoid scores of overlapping windows are averaged per frame.
   A short last window is padded by looping its own audio; frames past the recording's end are
   dropped.
3. ``biomae.decode.decode_events`` turns the frame scores into events (the model's own decode
   settings unless overridden); each event's frequency box is then measured from a linear
   spectrogram of the event and ``box_context_s`` of audio around it
   (``biomae.decode.frequency_box``), read back from the file — memory stays bounded.

Ultrasonic recordings: ``time_expansion = k`` plays the recording k times slower, as bat detectors
do, so a model trained at 32 kHz hears 0–16·k kHz; times are mapped back to real seconds and
frequencies to real Hz in the output.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from torch.utils.data import IterableDataset

from biomae.annotations.schema import empty_events
from biomae.devices import autocast, bf16_is_fast, resolve_device


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
        low_hz, high_hz, merge_gap_s, min_duration_s, label: the post-processing every detector
            shares (:mod:`biomae.detectors.postprocess`), applied to the events with their boxes;
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
    low_hz: float | None = None
    high_hz: float | None = None
    merge_gap_s: float | None = None
    min_duration_s: float | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        from biomae.detectors.postprocess import PostProcess

        PostProcess(self.low_hz, self.high_hz, self.merge_gap_s, self.min_duration_s, self.label)
        if not self.boxes and (self.low_hz is not None or self.high_hz is not None):
            raise ValueError("low_hz / high_hz keep events by their boxes: they need boxes=True")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must lie in [0, 1), got {self.overlap}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.time_expansion > 0:
            raise ValueError(f"time_expansion must be > 0, got {self.time_expansion}")


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


def load_detection_model(path: str | Path, device):
    """``(model, spec)`` of the fine-tuned detection model at ``path`` on ``device``
    (:func:`biomae.models.files.load_model`; ``starter`` is the shipped one).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a safetensors file, not a biomae fine-tuned model, or not a detect model
            (one line naming the file and what to give instead).
    """
    from safetensors import SafetensorError

    from biomae.models.files import load_model, resolve_model_path

    path = resolve_model_path(path)
    expected = "give a .safetensors model written by biomae finetune --task detect"
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
        from dataclasses import replace

        from biomae.detectors.postprocess import PostProcess
        from biomae.features import FrontEnd

        self.name = name
        self.config = config or InferConfig()
        self.model_path = Path(model_path)
        self.device = resolve_device(self.config.device)
        self.model, self.spec = load_detection_model(self.model_path, self.device)
        self.front_end = FrontEnd(self.spec.front_end, self.spec.encoder.patch_t, self.device)
        bf16 = self.config.bf16
        self.bf16 = bf16_is_fast(self.device.type) if bf16 is None else bf16
        self.decode_config = self.spec.decode
        if self.config.threshold_on is not None:
            off = min(self.decode_config.threshold_off or 1.0, self.config.threshold_on)
            self.decode_config = replace(
                self.decode_config, threshold_on=self.config.threshold_on, threshold_off=off
            )
        # a given merge gap / minimum duration replaces the model's own: the decoder then keeps
        # every run of frames and the shared post-processing applies the given value
        for name in ("merge_gap_s", "min_duration_s"):
            if getattr(self.config, name) is not None:
                self.decode_config = replace(self.decode_config, **{name: 0.0})
        self.post = PostProcess(
            low_hz=self.config.low_hz,
            high_hz=self.config.high_hz,
            merge_gap_s=self.config.merge_gap_s,
            min_duration_s=self.config.min_duration_s,
            label=self.config.label,
        )
        self.labels = list(self.spec.labels) or ["call"]  # class-agnostic: "call"
        self.outputs = tuple(self.model.head.config.outputs)  # activity [, onset, offset]
        self.n_channels = len(self.labels) * len(self.outputs)
        self.sample_rate = self.spec.front_end.sample_rate
        self.window_samples = self.spec.window_samples
        frame_hop = self.model.head.frame_hop_s * self.sample_rate
        if abs(frame_hop - round(frame_hop)) > 1e-6:
            raise ValueError(f"{self.model_path}: head frame hop {frame_hop} samples is not whole")
        self.frame_hop_samples = round(frame_hop)
        hop_frames = max(1, round(self.window_samples * (1 - self.config.overlap) / frame_hop))
        self.hop_samples = hop_frames * self.frame_hop_samples

    def name_for(self, path: str | Path) -> str:
        """The detector that annotates ``path``: this model, whatever the recording."""
        return self.name

    def params(self) -> dict:
        return {
            "detector": self.name,
            "model": str(self.model_path),
            "sample_rate": self.sample_rate,
            "window_s": self.window_samples / self.sample_rate,
            "labels": self.labels,
            "decode": asdict(self.decode_config),
            **asdict(self.config),
            "bf16": self.bf16,
        }

    def frame_scores(self, path: str | Path) -> tuple[np.ndarray, float, int]:
        """Averaged frame probabilities ``(n_frames, C)`` of a whole recording, the frame hop in
        real seconds, and the stream's sample rate (real-time samples per second)."""
        [(_, result)] = list(self.frame_scores_many([path]))
        if isinstance(result, Exception):
            raise result
        return result

    def frame_scores_many(self, paths: Iterable[str | Path]) -> Iterator[tuple[str | Path, object]]:
        """``(path, (scores, frame_hop_s, stream_rate))`` for each recording, in order, with windows
        of consecutive recordings sharing batches (many short files fill batches too). A recording
        that fails to decode yields ``(path, exception)`` and the others go on."""
        import torch

        open_recordings: dict[int, _Scores] = {}  # by input index, until all its windows ran
        batch: list[tuple[int, int, np.ndarray]] = []  # (index, start sample, window)
        next_out = 0  # the next input index to hand out, so results come in input order
        finished: dict[int, tuple[str | Path, object]] = {}

        def flush() -> None:
            audio = torch.from_numpy(np.stack([w for _, _, w in batch]))  # (b, window_samples)
            with torch.no_grad(), autocast(self.device, self.bf16):
                out = self.model(self.front_end(audio))
            # activity [+ onset + offset] side by side: (b, T_out, C * len(outputs))
            logits = torch.cat([out[name].float() for name in self.outputs], dim=-1)
            probs = torch.sigmoid(logits).cpu().numpy()
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

        for index, path, item in self._decoded(paths):
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
                if len(batch) == self.config.batch_size:
                    flush()
            yield from ready()
        if batch:
            flush()
        yield from ready()

    def _decoded(self, paths) -> Iterator:
        """The :class:`WindowReader` items of ``paths``, decoded ahead in a background thread or,
        with ``num_workers``, in DataLoader worker processes that each take every
        ``num_workers``-th recording (items of different recordings then interleave, which
        :meth:`frame_scores_many` sorts out by recording index)."""
        reader = WindowReader(
            list(paths),
            round(self.sample_rate * self.config.time_expansion),
            self.window_samples,
            self.hop_samples,
            self.frame_hop_samples,
        )
        if self.config.num_workers == 0:
            return prefetch(iter(reader))
        from torch.utils.data import DataLoader

        loader = DataLoader(
            reader, batch_size=None, num_workers=self.config.num_workers, collate_fn=_as_is
        )
        return iter(loader)

    def detect_file(self, path: str | Path, recording: str | None = None) -> pd.DataFrame:
        """Events in the recording at ``path`` (real seconds and Hz)."""
        return self._events(path, self.frame_scores(path), recording)

    def detect_many(self, paths: Iterable[str | Path]) -> Iterator[tuple[str | Path, object]]:
        """``(path, events)`` per recording in input order, windows of consecutive recordings
        sharing batches; ``(path, exception)`` for a recording that failed."""
        for path, result in self.frame_scores_many(paths):
            if isinstance(result, Exception):
                yield path, result
                continue
            try:
                yield path, self._events(path, result, None)
            except Exception as err:
                yield path, err

    def _events(self, path, result, recording: str | None) -> pd.DataFrame:
        from biomae.decode import decode_events

        scores, frame_hop_s, _ = result
        channels = dict(zip(self.outputs, np.split(scores, len(self.outputs), axis=1), strict=True))
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
        from biomae import audio as audio_io

        # the last frame may reach past the last sample: events end where the recording ends
        info = audio_io.info(path)
        events["end_s"] = events["end_s"].clip(upper=info.duration_s)
        # frame arithmetic in floats: round to the microsecond (0.94, not 0.9400000000000001)
        events[["start_s", "end_s"]] = events[["start_s", "end_s"]].round(6)
        if self.config.boxes:
            boxes = self._boxes(
                path, info, events["start_s"].to_numpy(), events["end_s"].to_numpy()
            )
            events["low_hz"], events["high_hz"] = boxes[:, 0], boxes[:, 1]
        return self.post.apply(events)

    def _boxes(self, path, info, starts_s: np.ndarray, ends_s: np.ndarray) -> np.ndarray:
        """``(n, 2)`` frequency boxes (real Hz) of the events, each measured from its audio and
        ``box_context_s`` around it (the noise floor). Events close together share one read and
        one spectrogram of at most ``BOX_SPAN_S`` seconds, so memory stays bounded and a busy
        recording is not decoded once per event."""
        from biomae import audio as audio_io
        from biomae.decode import frequency_box

        context_s, fraction = self.config.box_context_s, self.decode_config.energy_fraction
        lo_s = np.maximum(0.0, starts_s - context_s)
        hi_s = np.minimum(info.duration_s, ends_s + context_s)
        boxes = np.full((len(starts_s), 2), np.nan)
        order = np.argsort(lo_s, kind="stable")
        hop_s = BOX_HOP_S / self.config.time_expansion  # finer for time-expanded calls
        i = 0
        while i < len(order):  # one group: events whose context fits in one span from order[i]
            group_lo, j = lo_s[order[i]], i + 1
            group_hi = hi_s[order[i]]
            while j < len(order) and max(group_hi, hi_s[order[j]]) - group_lo <= BOX_SPAN_S:
                group_hi = max(group_hi, hi_s[order[j]])
                j += 1
            audio, rate = audio_io.load(path, start_s=group_lo, duration_s=group_hi - group_lo)
            power, hop, edges_hz = _power_spectrogram(audio, rate, hop_s)  # (F, T)
            low_bin = int(np.searchsorted(edges_hz[:-1], self.config.box_min_hz, side="left"))
            low_bin = min(low_bin, power.shape[0] - 1)
            power, edges_hz = power[low_bin:], edges_hz[low_bin:]  # bins above box_min_hz
            fps = rate / hop  # frames per second
            events = order[i:j]
            n_frames = power.shape[1]
            spans = []  # (context start, event start, event end, context end) in group frames
            for k in events:
                c_lo = min(n_frames - 1, round((lo_s[k] - group_lo) * fps))
                c_hi = min(n_frames, max(c_lo + 1, round((hi_s[k] - group_lo) * fps)))
                first = c_lo + min(c_hi - c_lo - 1, round((starts_s[k] - lo_s[k]) * fps))
                last = min(c_hi, max(first + 1, c_lo + round((ends_s[k] - lo_s[k]) * fps)))
                spans.append((c_lo, first, last, c_hi))
            # each event's noise floor: per-bin median of NOISE_FRAMES context frames spread
            # evenly before and after it (all its frames when the context is too short),
            # for all the group's events in one call
            picks = np.stack([_noise_frames(*span) for span in spans])  # (E, NOISE_FRAMES)
            noise = np.median(power[:, picks], axis=2)  # (F, E)
            for e, (k, (c_lo, first, last, c_hi)) in enumerate(zip(events, spans, strict=True)):
                part = power[:, c_lo:c_hi]  # (F, context frames) of event k
                boxes[k] = frequency_box(
                    part, edges_hz, first - c_lo, last - c_lo, fraction, noise[:, e]
                )
            i = j
        return boxes


BOX_SPAN_S = 60.0  # longest stretch of audio read at once to measure frequency boxes
BOX_HOP_S = 0.01  # frame hop of the box spectrogram (real time: divided by time_expansion)
NOISE_FRAMES = 16  # context frames whose per-bin median is an event's noise floor


def _noise_frames(c_lo: int, first: int, last: int, c_hi: int) -> np.ndarray:
    """``(NOISE_FRAMES,)`` frame indices spread evenly over an event's context outside it
    (``[c_lo, first)`` and ``[last, c_hi)``), repeating when there are fewer; all of
    ``[c_lo, c_hi)`` when fewer than 4 context frames lie outside the event."""
    outside = np.r_[c_lo:first, last:c_hi]
    if len(outside) < 4:
        outside = np.arange(c_lo, c_hi)
    return outside[np.linspace(0, len(outside) - 1, NOISE_FRAMES).round().astype(int)]


def _power_spectrogram(
    audio: np.ndarray, rate: int, hop_s: float
) -> tuple[np.ndarray, int, np.ndarray]:
    """``(F, T)`` linear power at ``hop_s`` frames with windows of ~1.6 hops (a power of two, at
    least 64), the hop in samples and the ``(F + 1,)`` bin edges in Hz."""
    from biomae.features import power_spectrogram

    hop = max(1, round(hop_s * rate))
    n_fft = int(2 ** math.ceil(math.log2(max(64, 1.6 * hop))))
    power = power_spectrogram(audio, n_fft, hop)  # (F, T)
    edges_hz = (np.arange(power.shape[0] + 1) - 0.5).clip(0) * rate / n_fft
    edges_hz[-1] = rate / 2
    return power, hop, edges_hz


def _as_is(item):
    """DataLoader ``collate_fn`` that leaves items as they are (no tensor conversion)."""
    return item


class _Open(NamedTuple):
    """A recording's first item: what its score buffer needs."""

    n_frames: int
    frame_hop_s: float
    stream_rate: int


class WindowReader(IterableDataset):
    """The windows of recordings as ``(index, path, item)``: per recording an :class:`_Open`, its
    windows as ``(start_sample, window (window_samples,) float32)``, then ``None``; or the
    exception that stopped its decoding (the other recordings go on). In a DataLoader worker it
    reads only the recordings whose index falls to that worker.

    A short last window is padded by looping its own audio (silence would skew the per-window
    normalisation and read as a call or a gap).
    """

    def __init__(self, paths, stream_rate, window_samples, hop_samples, frame_hop_samples):
        self.paths, self.stream_rate = paths, stream_rate
        self.window_samples, self.hop_samples = window_samples, hop_samples
        self.frame_hop_samples = frame_hop_samples

    def fill(self, audio: np.ndarray) -> np.ndarray:
        if len(audio) >= self.window_samples:
            return np.ascontiguousarray(audio[: self.window_samples], dtype=np.float32)
        if len(audio) == 0:
            return np.zeros(self.window_samples, dtype=np.float32)
        return np.pad(audio, (0, self.window_samples - len(audio)), mode="wrap").astype(np.float32)

    def __iter__(self):
        from torch.utils.data import get_worker_info

        from biomae import audio as audio_io

        worker = get_worker_info()
        share, n_shares = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        rate = self.stream_rate
        for index, path in enumerate(self.paths):
            if index % n_shares != share:
                continue
            try:
                info = audio_io.info(path)
                n_stream = math.ceil(info.n_samples * rate / info.sample_rate)
                n_frames = max(1, math.ceil(n_stream / self.frame_hop_samples))
                yield index, path, _Open(n_frames, self.frame_hop_samples / rate, rate)
                blocks = audio_io.stream(
                    path,
                    block_s=self.window_samples / rate,
                    hop_s=self.hop_samples / rate,
                    sample_rate=rate if rate != info.sample_rate else None,
                )
                for block in blocks:
                    yield index, path, (block.start_sample, self.fill(block.audio))
                yield index, path, None
            except Exception as err:  # reported for this recording; the others go on
                yield index, path, err if worker is None else _picklable(err)


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
