"""Live annotation: audio arriving on a pipe → events as soon as they are decided.

``biomae annotate - --live --out DIR`` (:func:`run_live`) reads a WAV or raw PCM stream on stdin
(:mod:`biomae.live_stream`), prints each event as one JSON line on stdout once it is decided, and
writes the usual tables for the whole stream when it ends (EOF or Ctrl-C).

The detectors and the decoding are batch annotate's own, run incrementally so that a recording
piped through gives the events of annotating the file:

- the model (:class:`LiveModel`), by default with short live windows (``hop_s``,
  :data:`LIVE_HOP_S`; ``--live-hop-s``): a window of the model's ``window_s`` ends every 0.5 s
  at the newest audio and scores the frames after those already scored, so each frame is scored
  once, by the first window that ends after it (with at most ``hop_s`` of audio after it, as a
  file's window-edge frames). The scores then go through the same decoding
  (:func:`biomae.decode.decode_events` on a bounded tail of frame scores, from a frame where
  every class is quiet); an event is decided as soon as the frames of its merge gap after it are
  scored quiet and its box's context (``box_context_s``) has arrived: about 0.5-1 s after its
  end. The events are the file's within a tolerance, not equal (frames are scored with other
  windows): on real recordings with the starter model, event F1 0.92 against annotating the
  file (IoU >= 0.5; 62 % of events identical), the events the same however the stream is cut
  into reads. ``hop_s=None`` (``--live-hop-s 0``) runs the file's windows (``window_s`` with
  ``overlap``, from sample 0) through the same :class:`biomae.infer.Scorer` with the same
  averaging, so the events equal annotating the file, each decided once every window covering
  it has run: about ``window_s - (end within its window)`` + ``merge_gap_s`` after its end (the
  starter: 5.12-s windows). Frequency boxes are measured as batch annotate measures them, but
  each decided group of events on its own: batch annotate shares one spectrogram across events
  up to 60 s apart, so a box may differ by a frequency bin or so (tested tolerance).
- the energy detector (:class:`LiveEnergy`): the same blocks (``block_s`` with
  ``noise_window_s`` of context either side), so the same events, boxes included; an event is
  decided once the block after it has been read: up to ``block_s + noise_window_s`` (130 s by
  default) after its end.

Memory is bounded at any stream length: a window's audio (and a hop), the frame scores since the
last quiet frame (at most :data:`MAX_TAIL_S` of them: an event still going on after that long is
cut there) and the audio its boxes need.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from biomae.annotations.schema import concat_events, empty_events
from biomae.live_stream import AudioTail

MAX_TAIL_S = 1800.0  # the longest stretch of frame scores kept while an event is still open
LIVE_HOP_S = 0.5  # live windows end every this many seconds (0 / None: the file's windows)


class LiveModel:
    """A :class:`biomae.detectors.model.ModelDetector` run on a stream (module docstring).

    Args:
        detector: the model detector (its scorer, decode settings and post-processing).
        sample_rate: the stream's rate in Hz.
        recording: the name written in each event's ``recording`` column.
        hop_s: short live windows end every ``hop_s`` seconds (module docstring); None (or 0):
            the file's windows, the file's events.
    """

    def __init__(
        self, detector, sample_rate: int, recording: str, hop_s: float | None = LIVE_HOP_S
    ):
        from biomae import audio as audio_io

        self.detector, self.scorer = detector, detector.scorer
        self.sample_rate, self.recording = sample_rate, recording
        self.stream_rate = round(self.scorer.sample_rate * self.scorer.time_expansion)
        self.resampler = None
        if self.stream_rate != sample_rate:
            import soxr

            self.resampler = soxr.ResampleStream(
                sample_rate, self.stream_rate, 1, dtype="float32",
                quality=audio_io.RESAMPLE_QUALITY,
            )  # fmt: skip
        self.frame_hop = self.scorer.frame_hop_samples  # stream samples per frame
        self.frame_hop_s = self.frame_hop / self.stream_rate  # real seconds per frame
        self.live_hop = None  # the file's windows (None) or windows every live_hop samples
        frames_per_s = 1 / self.frame_hop_s  # frames per real second
        if hop_s:
            self.live_hop = max(1, round(hop_s * frames_per_s)) * self.frame_hop
        self.next_end = self.scorer.window_samples  # live windows: the next one's end
        self.scored = 0  # live windows: global frames scored (each by one window)
        self.windows = AudioTail(self.stream_rate)  # what the model reads
        self.audio = AudioTail(sample_rate)  # what frequency boxes read
        self.next_start = self.last_end = 0  # next window's start; end of the last full window
        self.base = 0  # global frame of the score buffers' first row
        self.done_frame = 0  # global frame where the events printed so far end
        self.group = (np.zeros(0), np.zeros(0))  # starts, ends (s) of the open box group's events
        self.group_lo_s = 0.0  # where its spectrogram starts
        n_channels = self.scorer.n_channels
        self.total = np.zeros((0, n_channels))
        self.count = np.zeros((0, 1))
        config = detector.decode_config
        post_gap_s = detector.post.merge_gap_s or 0.0
        self.margin = 2 + int(
            math.ceil((config.merge_gap_s + post_gap_s + config.refine_search_s) / self.frame_hop_s)
        )  # frames after an event that must be known before it is decided
        self.off = np.array([config.thresholds(label)[1] for label in detector.labels])
        self.max_frames = int(MAX_TAIL_S / self.frame_hop_s)
        self.recheck_at = math.inf  # audio samples at which waiting events get their box context
        self.empty = empty_events()

    def feed(self, audio: np.ndarray) -> pd.DataFrame:
        """Take the next samples; the events decided now (maybe none)."""
        self.audio.append(audio)
        if self.resampler is not None:
            audio = self.resampler.resample_chunk(audio, last=False)
        self.windows.append(audio)
        scored_until = self._scored_frames()
        self._score(eof=False)
        if self._scored_frames() == scored_until and self.audio.end < self.recheck_at:
            return self.empty  # nothing new to decide on: most reads
        return self._decide(eof=False)

    def finish(self) -> pd.DataFrame:
        """The stream ended: every event left."""
        if self.resampler is not None:
            self.windows.append(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        self._score(eof=True)
        return self._decide(eof=True)

    def _n_frames(self) -> int:
        """Frames of the whole stream once it ended, as :class:`biomae.infer.Scorer` counts."""
        n_stream = math.ceil(self.audio.end * self.stream_rate / self.sample_rate)
        return max(1, math.ceil(n_stream / self.frame_hop)) if self.audio.end else 0

    def _scored_frames(self) -> int:
        """Global frames whose score is final (every window that scores them has run)."""
        return self.scored if self.live_hop else self.next_start // self.frame_hop

    def _score(self, eof: bool) -> None:
        """Run every window that is complete (and, at the end, the short last one)."""
        if self.live_hop:
            self._score_live(eof)
            return
        size, hop = self.scorer.window_samples, self.scorer.hop_samples
        starts, windows = [], []
        while self.windows.end - self.next_start >= size:
            starts.append(self.next_start)
            windows.append(self.windows.get(self.next_start, size).copy())
            self.last_end, self.next_start = self.next_start + size, self.next_start + hop
        filled = self.windows.end - self.next_start
        if eof and filled > 0 and self.windows.end > self.last_end:  # as audio.stream's last block
            starts.append(self.next_start)
            windows.append(_loop_fill(self.windows.get(self.next_start, filled), size))
        self.windows.drop_before(self.next_start)
        batch = self.scorer.batch_size
        for i in range(0, len(windows), batch):
            probs = self.scorer.window_probs(np.stack(windows[i : i + batch]))  # (b, T, C)
            for start, window_probs in zip(starts[i : i + batch], probs, strict=True):
                self._add(start // self.frame_hop, window_probs)
        if eof:
            keep = max(0, self._n_frames() - self.base)
            self.total, self.count = self.total[:keep], self.count[:keep]

    def _score_live(self, eof: bool) -> None:
        """Windows every ``live_hop`` samples, the newest ending at the newest whole hop of
        audio; each scores the frames after those already scored (the first all its frames), so
        a frame's score is final as soon as a window ends after it. At the end, one last window
        ends at the last sample (a stream shorter than a window: looped, as a file's)."""
        size, fh = self.scorer.window_samples, self.frame_hop
        jobs = []  # (first frame to keep, frames to keep, start sample, window)
        while self.windows.end >= self.next_end:
            start = self.next_end - size
            stop = self.next_end // fh
            jobs.append((self.scored, stop, start, self.windows.get(start, size)))
            self.scored, self.next_end = stop, self.next_end + self.live_hop
        n_total = self._n_frames()
        if eof and self.scored < n_total:
            end = self.windows.end
            start = max(0, -(-(end - size) // fh) * fh)  # frame-aligned, reaching the end
            window = _loop_fill(self.windows.get(start, end - start), size)
            jobs.append((self.scored, n_total, start, window))
            self.scored = n_total
        batch = self.scorer.batch_size
        for i in range(0, len(jobs), batch):
            part = jobs[i : i + batch]
            probs = self.scorer.window_probs(np.stack([job[3] for job in part]))  # (b, T, C)
            for (first, stop, start, _), window_probs in zip(part, probs, strict=True):
                offset = start // fh
                self._add(first, window_probs[first - offset : stop - offset])
        # the last window at EOF may start up to a hop before the next one would
        self.windows.drop_before(self.next_end - size - self.live_hop)

    def _add(self, first_frame: int, probs: np.ndarray) -> None:
        lo = first_frame - self.base
        if lo < 0:
            raise RuntimeError(f"live scores: frame {first_frame} already released")
        need = lo + len(probs) - len(self.total)
        if need > 0:
            self.total = np.concatenate([self.total, np.zeros((need, self.total.shape[1]))])
            self.count = np.concatenate([self.count, np.zeros((need, 1))])
        self.total[lo : lo + len(probs)] += probs
        self.count[lo : lo + len(probs)] += 1

    def _decide(self, eof: bool) -> pd.DataFrame:
        from biomae.decode import decode_events

        final = (self._n_frames() if eof else self._scored_frames()) - self.base
        self.recheck_at = math.inf
        if final <= 0:
            return self.empty
        scores = self.total[:final] / np.maximum(self.count[:final], 1)
        channels = self.scorer.split(scores)
        activity = channels["activity"]  # (final, C)
        raw = decode_events(
            activity,
            self.frame_hop_s,
            self.detector.labels,
            self.detector.decode_config,
            onset=channels.get("onset"),
            offset=channels.get("offset"),
            recording=self.recording,
            source="biomae-model",
        )
        first = np.rint(raw["start_s"].to_numpy() / self.frame_hop_s).astype(int)
        last = np.rint(raw["end_s"].to_numpy() / self.frame_hop_s).astype(int)
        new = self.base + last > self.done_frame  # not printed already
        raw, first, last = raw[new], first[new], last[new]
        loud = activity >= self.off  # (final, C)
        open_from = final
        for c in range(loud.shape[1]):
            if loud[-1, c]:
                quiet = np.flatnonzero(~loud[:, c])
                open_from = min(open_from, quiet[-1] + 1 if len(quiet) else 0)
        forced = final > self.max_frames
        n_decided, group_end, bound = 0, -1, open_from
        order = np.argsort(first, kind="stable")
        audio_until_s = self.audio.end / self.sample_rate
        context_s = self.detector.config.box_context_s
        i = 0
        while i < len(order):  # groups of events close enough to merge or share context
            j, end = i + 1, last[order[i]]
            while j < len(order) and first[order[j]] - end <= self.margin:
                end = max(end, last[order[j]])
                j += 1
            needed_s = (self.base + end) * self.frame_hop_s + context_s  # its boxes' audio
            scored = end + self.margin <= open_from
            decided = eof or forced or (scored and needed_s <= audio_until_s)
            if not decided:
                if scored:  # waiting for audio only: look again once it is here
                    self.recheck_at = math.ceil(needed_s * self.sample_rate)
                bound = min(bound, first[order[i]])
                break
            n_decided, group_end, i = j, end, j
        rows = order[:n_decided]
        events = raw.iloc[rows].copy()
        events["start_s"] = (self.base + first[rows]) * self.frame_hop_s
        events["end_s"] = (self.base + last[rows]) * self.frame_hop_s
        events = self._finish_events(events, eof)
        if n_decided:
            self.done_frame = self.base + group_end
        self._release(final if (eof or forced) else None, group_end, bound, loud)
        return events

    def _finish_events(self, events: pd.DataFrame, eof: bool) -> pd.DataFrame:
        """As :meth:`ModelDetector._events`: clip to the recording, round, boxes, post-process."""
        if not len(events):
            return self.empty
        duration_s = self.audio.end / self.sample_rate
        if eof:
            events["end_s"] = events["end_s"].clip(upper=duration_s)
        events[["start_s", "end_s"]] = events[["start_s", "end_s"]].round(6)
        events = events.sort_values(["start_s", "end_s"], kind="stable").reset_index(drop=True)
        if self.detector.config.boxes:
            boxes = self._boxes(
                events["start_s"].to_numpy(), events["end_s"].to_numpy(), duration_s
            )
            events["low_hz"], events["high_hz"] = boxes[:, 0], boxes[:, 1]
        return self.detector.post.apply(events)

    def _boxes(self, starts_s: np.ndarray, ends_s: np.ndarray, duration_s: float) -> np.ndarray:
        """Boxes of new events, measured with the events of the box group they continue, so that
        each spectrogram starts where batch annotate's does (``ModelDetector._boxes`` groups
        events whose context fits in ``BOX_SPAN_S`` from the group's first)."""
        from biomae.detectors.model import BOX_SPAN_S

        context_s = self.detector.config.box_context_s
        starts = np.concatenate([self.group[0], starts_s])
        ends = np.concatenate([self.group[1], ends_s])
        boxes = self.detector._boxes(
            self.recording, SimpleNamespace(duration_s=duration_s), starts, ends,
            load=self.audio.load,
        )  # fmt: skip
        lo_s = np.maximum(0.0, starts - context_s)
        hi_s = np.minimum(duration_s, ends + context_s)
        first, group_hi = 0, hi_s[0]  # the last group's first event, as _boxes groups them
        for k in range(1, len(starts)):
            if max(group_hi, hi_s[k]) - lo_s[first] <= BOX_SPAN_S:
                group_hi = max(group_hi, hi_s[k])
            else:
                first, group_hi = k, hi_s[k]
        self.group = (starts[first:], ends[first:])
        self.group_lo_s = lo_s[first]
        return boxes[-len(starts_s) :]

    def _release(self, cut: int | None, group_end: int, bound: int, loud: np.ndarray) -> None:
        """Drop the scores before the last quiet frame that no open event can reach back to."""
        if cut is None:
            lo, hi = max(0, group_end), bound - self.margin
            quiet = np.flatnonzero(~loud[lo : hi + 1].any(axis=1)) if hi >= lo else []
            if not len(quiet):
                return
            cut = lo + int(quiet[-1])
        self.total, self.count = self.total[cut:], self.count[cut:]
        self.base += cut
        keep_s = min(
            self.group_lo_s, self.base * self.frame_hop_s - self.detector.config.box_context_s
        )
        self.audio.drop_before(int((keep_s - 1.0) * self.sample_rate))


def _loop_fill(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """A short last window padded by looping its own audio (as :class:`biomae.infer.Scorer`)."""
    return np.pad(audio, (0, n_samples - len(audio)), mode="wrap").astype(np.float32)


class LiveEnergy:
    """The energy detector run on a stream, block by block as it runs on a file (module
    docstring)."""

    def __init__(self, detector, sample_rate: int, recording: str):
        self.cfg = detector.config.resolved(sample_rate)
        self.sample_rate, self.recording = sample_rate, recording
        self.hop = round(self.cfg.hop_s * sample_rate)
        self.core_frames = max(1, round(self.cfg.block_s * sample_rate / self.hop))
        self.context_frames = round(
            min(self.cfg.noise_window_s, self.cfg.block_s) * sample_rate / self.hop
        )
        self.gap_frames = 3 + math.ceil((self.cfg.post.merge_gap_s or 0.0) * sample_rate / self.hop)
        self.audio = AudioTail(sample_rate)
        self.next_core = 0  # the next block's first core frame: every frame before it is done
        self.segments: list[dict] = []
        self.empty = empty_events()

    def feed(self, audio: np.ndarray) -> pd.DataFrame:
        self.audio.append(audio)
        done_until = self.next_core
        while self.audio.end >= (self.next_core + self.core_frames + self.context_frames) * (
            self.hop
        ):
            self._block(self.next_core + self.core_frames, self.audio.end)
        return self.empty if self.next_core == done_until else self._decide(eof=False)

    def finish(self) -> pd.DataFrame:
        n_total = self.audio.end // self.hop + 1
        while self.audio.end and self.next_core < n_total:
            self._block(min(self.next_core + self.core_frames, n_total), self.audio.end)
        return self._decide(eof=True)

    def _block(self, core_end: int, n_samples: int) -> None:
        from biomae.detectors.energy import _segments_in_block

        core_start, n_total = self.next_core, n_samples // self.hop + 1
        first = max(0, core_start - self.context_frames)
        last = min(n_total, core_end + self.context_frames)
        start = first * self.hop
        block = self.audio.get(start, min(n_samples, last * self.hop) - start)
        self.segments.extend(
            _segments_in_block(
                block, self.sample_rate, first, core_start - first, core_end - first, self.cfg
            )
        )
        self.next_core = core_end
        self.audio.drop_before((core_end - self.context_frames) * self.hop)

    def _decide(self, eof: bool) -> pd.DataFrame:
        from biomae.detectors.energy import _finish

        self.segments.sort(key=lambda s: s["first"])
        n_decided, i = 0, 0
        while i < len(self.segments):
            j, end = i + 1, self.segments[i]["last"]
            while j < len(self.segments) and self.segments[j]["first"] - end <= self.gap_frames:
                end = max(end, self.segments[j]["last"])
                j += 1
            if not (eof or end + self.gap_frames <= self.next_core):
                break
            n_decided = i = j
        decided, self.segments = self.segments[:n_decided], self.segments[n_decided:]
        if not decided:
            return self.empty
        return _finish(decided, self.sample_rate, self.hop, self.cfg, self.recording,
                       self.audio.end)  # fmt: skip


def live_detector(detector, sample_rate: int, recording: str, hop_s: float | None = LIVE_HOP_S):
    """The live form of ``detector`` for a stream at ``sample_rate`` (the ``auto`` detector routes
    by the rate, as it routes a file); ``hop_s``: the model's live window hop (:class:`LiveModel`).
    """
    from biomae.detectors.auto import AutoDetector
    from biomae.detectors.energy import EnergyDetector
    from biomae.detectors.gate import GatedDetector
    from biomae.detectors.model import ModelDetector

    if isinstance(detector, AutoDetector):
        heard_hz = sample_rate / getattr(detector.model.config, "time_expansion", 1.0)
        use_model = detector.low_rate_hz <= heard_hz <= detector.ultrasonic_rate_hz
        detector = detector.model if use_model else detector.energy
    if isinstance(detector, GatedDetector):  # the gate reads a file around each event: not live
        detector = detector.detector
    if isinstance(detector, ModelDetector):
        return LiveModel(detector, sample_rate, recording, hop_s), detector.name
    if isinstance(detector, EnergyDetector):
        return LiveEnergy(detector, sample_rate, recording), detector.name
    raise ValueError(f"--live runs the model or the energy detector, not {detector.name!r}")


def event_lines(events: pd.DataFrame) -> list[str]:
    """One JSON object per event (NaN written as null)."""
    columns = ["recording", "start_s", "end_s", "low_hz", "high_hz", "label", "score"]
    records = events[columns].astype(object).where(events[columns].notna(), None)
    return [json.dumps(row, allow_nan=False) for row in records.to_dict("records")]


def run_live(args, detector) -> int:
    """``biomae annotate - --live``: read stdin, print events as JSON lines, write the tables at
    the end. Returns the exit code (0 at EOF, 130 after Ctrl-C, 2 for a stream it cannot read)."""
    from biomae.annotate import files, fit_to_recording
    from biomae.live_stream import StreamError, chunks, raw_format, read_wav_header

    stdin, out = sys.stdin.buffer, Path(args.out)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    try:
        raw = (args.sample_rate, args.channels, args.sample_format)
        if any(value is not None for value in raw):
            if args.sample_rate is None:
                raise StreamError("raw PCM needs --sample-rate (and --channels, --sample-format)")
            fmt = raw_format(args.sample_rate, args.channels or 1, args.sample_format or "s16le")
        else:
            fmt = read_wav_header(stdin)
        hop_s = getattr(args, "live_hop_s", LIVE_HOP_S)
        if hop_s is not None and not (math.isfinite(hop_s) and hop_s >= 0):
            raise ValueError(f"--live-hop-s {hop_s}: give a number of seconds >= 0")
        live, name = live_detector(detector, fmt.sample_rate, args.name, hop_s)
        if isinstance(live, LiveModel) and "OMP_NUM_THREADS" not in os.environ:
            import torch

            # a window every hop_s is little work: one thread leaves the other cores to the
            # recorder and the system, and never spin-waits for a busy core
            torch.set_num_threads(1)
        files.check_out_dir(out)
    except (StreamError, ValueError) as err:
        print(f"biomae annotate: {err}", file=sys.stderr)
        return 2
    tables, code, error = [], 0, None

    def emit(events: pd.DataFrame) -> None:
        if len(events):
            tables.append(events)
            for line in event_lines(events):
                print(line, flush=True)

    try:
        try:
            for chunk in chunks(stdin, fmt):
                emit(live.feed(chunk))
        except KeyboardInterrupt:
            code = 130
        except StreamError as err:  # what came before it is kept
            error, code = str(err), 1
        duration_s = live.audio.end / fmt.sample_rate
        emit(fit_to_recording(live.finish(), duration_s) if duration_s else empty_events())
    except KeyboardInterrupt:
        code = 130
    duration_s = live.audio.end / fmt.sample_rate
    events = concat_events(tables)
    if len(events):
        events = fit_to_recording(events, duration_s)
    info = SimpleNamespace(sample_rate=fmt.sample_rate, duration_s=duration_s)
    entry = {
        "key": args.name, "path": "-", "status": "error" if error else "done", "detector": name,
        "n_events": len(events), "duration_s": duration_s, "sample_rate": fmt.sample_rate,
        "channels": fmt.channels, "warning": None, "seconds": None, "skipped": False,
        "error": error or "",
    }  # fmt: skip
    try:
        files.write_tables(out, args.name, events, formats, info)
        files.write_run_tables(out, [entry])
    except files.OutputError as err:
        print(f"biomae annotate: {err}", file=sys.stderr)
        return 3
    if error:
        print(f"biomae annotate: {error}", file=sys.stderr)
    print(f"{len(events)} events in {duration_s:.1f} s of live audio -> {out}", file=sys.stderr)
    return code
