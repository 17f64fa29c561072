"""Detectors: what turns a recording into events, and the one factory that makes them.

Every detector follows :class:`Detector`. The shipped ones:

- ``energy`` (:class:`biomae.detectors.energy.EnergyDetector`): band energy above an adaptive
  noise floor, no model;
- a model (:class:`biomae.detectors.model.ModelDetector`): a fine-tuned detection model file, or
  ``starter``, the shipped starter model;
- ``auto`` (:class:`biomae.detectors.auto.AutoDetector`): the starter model (behind the
  noise-floor gate of :mod:`biomae.detectors.gate`) where it can hear the
  calls, the energy detector where it cannot (``biomae annotate``'s default);
- ``birdnet`` (:class:`biomae.detectors.birdnet.BirdNETDetector`): the BirdNET V2.4 peer, run in
  its own virtual environment (``bench/peers/``), for comparisons only.

:func:`make_detector` builds any of them from a name or a model path and options; ``biomae
annotate`` and ``biomae evaluate`` call it. Importing this package is light (no torch): the
detectors are imported when made.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pandas as pd

from biomae.detectors.energy import EnergyDetector, EnergyDetectorConfig
from biomae.detectors.postprocess import PostProcess

if TYPE_CHECKING:
    from biomae.audio import AudioInfo

DETECTORS = ("auto", "energy", "model", "birdnet")


@runtime_checkable
class Detector(Protocol):
    """What ``biomae annotate`` and ``biomae evaluate`` need of a detector.

    ``info`` is the recording's header (:func:`biomae.audio.info`) when the caller has read it
    already (``biomae annotate`` reads each recording's header once and passes it along); None
    means "read it yourself". A detector written without the ``info`` arguments (or without
    ``name_for`` / ``detect_many``) still works: :func:`complete` fills the gaps.

    Attributes:
        name: the detector's name in ``run.json`` and ``summary.csv``.
    """

    name: str

    def params(self) -> dict:
        """Its settings, as plain data (written to ``run.json``)."""
        ...

    def name_for(self, path: str | Path, info: AudioInfo | None = None) -> str:
        """The name of the detector that annotates ``path`` (``auto`` routes per recording)."""
        ...

    def detect_file(
        self, path: str | Path, recording: str | None = None, info: AudioInfo | None = None
    ) -> pd.DataFrame:
        """The events of one recording (``biomae.annotations.schema``; ``recording`` names it in
        the table, default ``str(path)``)."""
        ...

    def detect_many(
        self, paths: Iterable[str | Path], infos: Sequence[AudioInfo | None] | None = None
    ) -> Iterator[tuple[str | Path, Any]]:
        """``(path, events)`` per recording in input order, or ``(path, exception)`` for one that
        failed (the others go on); ``infos``, when given, holds each path's header (or None). A
        model batches windows of many recordings together."""
        ...


def _takes(method, name: str) -> bool:
    """Whether ``method`` accepts the keyword argument ``name`` (or any keyword)."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


class _Completed:
    """A detector with the whole :class:`Detector` protocol around one that has part of it (no
    ``info`` arguments, no ``name_for``, no ``detect_many``); its signatures are checked once."""

    def __init__(self, detector) -> None:
        self.detector = detector
        self.name = detector.name
        self._name_for = getattr(detector, "name_for", None)
        self._many = getattr(detector, "detect_many", None)
        self._name_for_info = self._name_for is not None and _takes(self._name_for, "info")
        self._file_info = _takes(detector.detect_file, "info")
        self._many_infos = self._many is not None and _takes(self._many, "infos")

    def params(self) -> dict:
        return self.detector.params()

    def name_for(self, path: str | Path, info: AudioInfo | None = None) -> str:
        if self._name_for is None:
            return str(self.name)
        return self._name_for(path, info=info) if self._name_for_info else self._name_for(path)

    def detect_file(self, path, recording: str | None = None, info: AudioInfo | None = None):
        if self._file_info:
            return self.detector.detect_file(path, recording, info=info)
        return self.detector.detect_file(path, recording)

    def detect_many(self, paths, infos=None) -> Iterator[tuple[str | Path, Any]]:
        paths = list(paths)
        if self._many is not None:
            yield from self._many(paths, infos=infos) if self._many_infos else self._many(paths)
            return
        infos = [None] * len(paths) if infos is None else infos
        for path, info in zip(paths, infos, strict=True):
            try:
                yield path, self.detect_file(path, str(path), info)
            except Exception as err:  # reported for this recording; the others go on
                yield path, err


def complete(detector) -> Detector:
    """``detector`` itself when it has the whole :class:`Detector` protocol (``info`` arguments
    included), else a wrapper that calls what it has (``detect_file`` one by one where it has no
    ``detect_many``; its ``name`` where it has no ``name_for``)."""
    if isinstance(detector, _Completed):
        return detector
    name_for = getattr(detector, "name_for", None)
    many = getattr(detector, "detect_many", None)
    whole = (
        name_for is not None
        and many is not None
        and _takes(name_for, "info")
        and _takes(detector.detect_file, "info")
        and _takes(many, "infos")
    )
    return detector if whole else _Completed(detector)


def detect_many(
    detector, paths: Iterable[str | Path], infos: Sequence[AudioInfo | None] | None = None
) -> Iterator[tuple[str | Path, Any]]:
    """``detector.detect_many(paths, infos)`` through :func:`complete`: any detector, same
    contract (``(path, events or exception)`` in input order)."""
    yield from complete(detector).detect_many(paths, infos)


def make_detector(
    detector: str = "auto",
    model: str | Path | None = None,
    *,
    shared: dict[str, Any] | None = None,
    model_options: dict[str, Any] | None = None,
    energy_options: dict[str, Any] | None = None,
    birdnet_options: dict[str, Any] | None = None,
) -> Detector:
    """The detector a name or a model path asks for.

    Args:
        detector: "auto" (the starter model, or ``$BIOMAE_STARTER_MODEL``, behind the noise-floor
            gate of :mod:`biomae.detectors.gate`, where it can hear the calls, the energy detector
            elsewhere; the energy detector everywhere when no starter
            model is installed), "energy", or "model" (``model`` on every recording).
        model: a model file (or ``starter``): run on every recording. Given with "auto" it means
            "model".
        shared: post-processing every detector applies: the fields of
            :class:`biomae.detectors.postprocess.PostProcess` (``low_hz``, ``high_hz``,
            ``merge_gap_s``, ``min_duration_s``, ``label``).
        model_options: :class:`biomae.detectors.model.InferConfig` fields other than ``post``
            (``overlap``, ``batch_size``, ``device``, ``bf16``, ``num_workers``,
            ``time_expansion``, ``threshold_on``, ``boxes`` …).
        energy_options: :class:`biomae.detectors.energy.EnergyDetectorConfig` fields other than
            ``post``.
        birdnet_options: :class:`biomae.detectors.birdnet.BirdNETDetector` arguments
            (``threshold``); with "birdnet" only.

    Raises:
        ValueError: an unknown detector, "model" without a model, a model with "energy", or
            options the chosen detector does not take (named).
        FileNotFoundError: the model file is not there.
        biomae.detectors.birdnet.BirdNETUnavailable: "birdnet" without its virtual environment.
    """

    if detector == "birdnet":
        if model is not None or shared or model_options or energy_options:
            raise ValueError("the birdnet detector takes birdnet_options only")
        from biomae.detectors.birdnet import BirdNETDetector

        return BirdNETDetector(**(birdnet_options or {}))
    if birdnet_options:
        raise ValueError(f"birdnet options {sorted(birdnet_options)} with detector {detector!r}")

    shared, model_options = dict(shared or {}), dict(model_options or {})
    energy_options = dict(energy_options or {})
    if detector not in DETECTORS:
        raise ValueError(f"detector {detector!r} is not one of {DETECTORS}")
    if detector == "model" and model is None:
        raise ValueError("detector 'model' needs a model file (or 'starter')")
    if detector == "energy" and model is not None:
        raise ValueError(f"model {model} with the energy detector: use detector 'model'")
    if detector == "energy" and model_options:
        raise ValueError(f"model options {sorted(model_options)} with the energy detector")
    if model is not None and energy_options:
        raise ValueError(f"energy options {sorted(energy_options)} with model {model}")
    post = PostProcess(**shared)
    energy = EnergyDetector(EnergyDetectorConfig(**energy_options, post=post))
    if detector == "energy":
        return energy
    name = "model"
    if model is None:
        from biomae.starter import default_model

        model, name = default_model(), "starter-model"
        if model is None:  # no starter model installed: the energy detector everywhere
            return energy
    # torch: imported when used, so that `import biomae.detectors` stays without it
    from biomae.detectors.model import InferConfig, ModelDetector

    model_detector = ModelDetector(model, InferConfig(**model_options, post=post), name=name)
    if name == "model":
        return model_detector
    # torch: imported when used, so that `import biomae.detectors` stays without it
    from biomae.detectors.auto import AutoDetector
    from biomae.detectors.gate import GatedDetector

    # the starter model hears a standardised spectrogram: the gate keeps it silent in noise
    return AutoDetector(GatedDetector(model_detector), energy)
