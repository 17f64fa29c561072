"""The default detector of ``biomae annotate``: the starter model where it can hear the calls, the
energy detector where it cannot.

The starter model listens at 32 kHz, so it hears 0-16 kHz. Recordings sampled at
``ultrasonic_rate_hz`` or above (bat detectors, ultrasonic microphones) go to the energy detector,
whose settings adapt to ultrasonic rates; everything else goes to the model. ``biomae annotate
--model M`` bypasses this and runs M on every recording (with ``--time-expansion`` for bats).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd


class AutoDetector:
    """Routes each recording to ``model`` or ``energy`` by its sample rate (module docstring)."""

    name = "auto"

    def __init__(self, model, energy, ultrasonic_rate_hz: float = 96_000.0):
        self.model, self.energy = model, energy
        self.ultrasonic_rate_hz = ultrasonic_rate_hz

    def params(self) -> dict:
        return {
            "detector": self.name,
            "ultrasonic_rate_hz": self.ultrasonic_rate_hz,
            "below": self.model.params(),
            "at_or_above": self.energy.params(),
        }

    def uses_model(self, path: str | Path) -> bool:
        """Whether ``path`` goes to the model (an unreadable file does: it reports the error)."""
        from biomae import audio as audio_io

        try:
            return audio_io.info(path).sample_rate < self.ultrasonic_rate_hz
        except Exception:
            return True

    def detect_file(self, path: str | Path, recording: str | None = None) -> pd.DataFrame:
        detector = self.model if self.uses_model(path) else self.energy
        return detector.detect_file(path, recording)

    def detect_many(self, paths: Iterable[str | Path]) -> Iterator[tuple[str | Path, object]]:
        """``(path, events or exception)`` in input order; the model's recordings share batches."""
        paths = list(paths)
        to_model = [self.uses_model(p) for p in paths]
        model_results = self.model.detect_many(
            [p for p, m in zip(paths, to_model, strict=True) if m]
        )
        for path, use_model in zip(paths, to_model, strict=True):
            if use_model:
                yield next(model_results)
                continue
            try:
                yield path, self.energy.detect_file(path)
            except Exception as err:  # reported for this recording; the others go on
                yield path, err
