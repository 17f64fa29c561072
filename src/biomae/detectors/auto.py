"""The default detector of ``biomae annotate``: the starter model where it can hear the calls, the
energy detector where it cannot.

Each recording goes by the sample rate the model would hear it at (its own rate divided by the
model's ``time_expansion``, 1 by default):

- **below** ``low_rate_hz`` → energy detector. The model resamples everything to its own rate
  (32 kHz for the starter model) and listens through mel bands up to its Nyquist frequency; a
  recording whose Nyquist frequency lies below the middle of that mel range leaves more than half
  of the model's bands empty, and the model then finds nothing or marks whole windows
  (:func:`half_band_rate_hz`: 4.8 kHz for the starter model, so recordings at 2 and 4 kHz go to
  the energy detector, those at 8 kHz and above to the model).
- **above** ``ultrasonic_rate_hz`` (100 kHz, ``biomae.detectors.energy.ULTRASONIC_RATE_HZ``) →
  energy detector, whose automatic settings switch to bat-like calls at the same rate. The model
  hears only 0-16 kHz of such a recording. 96 kHz, a common rate for audible recordings, goes to
  the model.
- in between → the model.

``name_for(path)`` says which detector a recording goes to (``summary.csv``'s ``detector``
column); ``params()`` records the two rates and the rule. ``biomae annotate --model M`` bypasses
this and runs M on every recording (with ``--time-expansion`` for bats); ``--detector energy`` runs
the energy detector on every recording.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from biomae import audio as audio_io
from biomae.audio import AudioInfo
from biomae.detectors.energy import ULTRASONIC_RATE_HZ
from biomae.spectral import hz_to_mel, mel_to_hz


def half_band_rate_hz(fmin_hz: float, fmax_hz: float, scale: str = "mel") -> float:
    """The sample rate whose Nyquist frequency reaches the middle of a front end's band
    ``[fmin_hz, fmax_hz]`` on its frequency ``scale`` ("mel" or "linear"): a recording sampled
    below it leaves more than half of the front end's bands empty."""
    if scale == "mel":
        middle = (float(hz_to_mel(fmin_hz)) + float(hz_to_mel(fmax_hz))) / 2
        middle_hz = float(mel_to_hz(middle))
    else:
        middle_hz = (fmin_hz + fmax_hz) / 2
    return 2 * middle_hz


class AutoDetector:
    """Routes each recording to ``model`` or ``energy`` by its sample rate (module docstring).

    Args:
        model: a :class:`biomae.detectors.model.ModelDetector` (or anything with its methods
            and, unless ``low_rate_hz`` is given, its ``info``: the front end's ``band_hz`` and
            ``scale``).
        energy: the energy detector.
        low_rate_hz: recordings heard below this rate go to ``energy``; None derives it from the
            model's front end (:func:`half_band_rate_hz`).
        ultrasonic_rate_hz: recordings heard above this rate go to ``energy``.
    """

    name = "auto"

    def __init__(
        self,
        model,
        energy,
        low_rate_hz: float | None = None,
        ultrasonic_rate_hz: float = ULTRASONIC_RATE_HZ,
    ):
        self.model, self.energy = model, energy
        if low_rate_hz is None:
            low_rate_hz = half_band_rate_hz(*model.info.band_hz, model.info.scale)
        self.low_rate_hz = float(low_rate_hz)
        self.ultrasonic_rate_hz = float(ultrasonic_rate_hz)

    def params(self) -> dict:
        return {
            "detector": self.name,
            "routing": (
                f"{self.energy.name} for recordings heard below {self.low_rate_hz:.0f} Hz (more "
                f"than half the model's bands would be empty) or above "
                f"{self.ultrasonic_rate_hz:.0f} Hz (ultrasound), {self.model.name} in between; "
                "summary.csv names the detector of each recording"
            ),
            "low_rate_hz": self.low_rate_hz,
            "ultrasonic_rate_hz": self.ultrasonic_rate_hz,
            "model": self.model.params(),
            "energy": self.energy.params(),
        }

    def uses_model(self, path: str | Path, info: AudioInfo | None = None) -> bool:
        """Whether ``path`` (its header ``info``, read here when None) goes to the model (an
        unreadable file does: it reports the error)."""
        try:
            sample_rate = (audio_io.info(path) if info is None else info).sample_rate
        except Exception:
            return True
        heard_hz = sample_rate / getattr(self.model.config, "time_expansion", 1.0)
        return self.low_rate_hz <= heard_hz <= self.ultrasonic_rate_hz

    def name_for(self, path: str | Path, info: AudioInfo | None = None) -> str:
        """The name of the detector ``path`` goes to (e.g. ``starter-model`` or ``energy``)."""
        return (self.model if self.uses_model(path, info) else self.energy).name_for(path, info)

    def detect_file(
        self, path: str | Path, recording: str | None = None, info: AudioInfo | None = None
    ) -> pd.DataFrame:
        detector = self.model if self.uses_model(path, info) else self.energy
        return detector.detect_file(path, recording, info)

    def detect_many(
        self, paths: Iterable[str | Path], infos: Sequence[AudioInfo | None] | None = None
    ) -> Iterator[tuple[str | Path, object]]:
        """``(path, events or exception)`` in input order; the model's recordings share batches.
        ``infos``: each path's header (or None), when read already."""
        paths = list(paths)
        infos = [None] * len(paths) if infos is None else list(infos)
        to_model = [self.uses_model(p, i) for p, i in zip(paths, infos, strict=True)]
        model_results = self.model.detect_many(
            [p for p, m in zip(paths, to_model, strict=True) if m],
            [i for i, m in zip(infos, to_model, strict=True) if m],
        )
        for path, info, use_model in zip(paths, infos, to_model, strict=True):
            if use_model:
                yield next(model_results)
                continue
            try:
                yield path, self.energy.detect_file(path, info=info)
            except Exception as err:  # reported for this recording; the others go on
                yield path, err
