"""Labels from a few examples: ``biomae annotate ... --examples DIR``.

The examples folder takes one of two layouts:

- **class folders**: ``DIR/<label>/`` holds a few clips (any audio biomae reads); each clip is one
  example of ``<label>``, embedded whole;
- **annotated recordings**: ``DIR`` holds recordings with Raven selection tables beside them
  (``rec.flac`` + ``rec.selections.txt`` or ``rec.Table.1.selections.txt``); each selection is one
  example, labelled by the table's label column (``Annotation``, ``Species``, ... as
  :mod:`biomae.annotations.raven` reads it). Used when ``DIR`` holds any selection table.

Every detected event is cut out and embedded like a clip (:func:`biomae.spans.embed_spans`,
isolated, batched) and gets the class of its nearest example by cosine similarity (default;
``method="prototype"``: the nearest class mean of unit-length embeddings) with that similarity in a
``similarity`` column, or ``unknown`` when the similarity is below the threshold.

**The threshold, calibrated on the examples by leave-one-out.** Each example is held out in turn
and scored against the others: its similarity to its own class without it (the prototype of the
others, or its nearest other example). The threshold is the 5th percentile of these scores
(:data:`KEEP_FRACTION` of held-out examples would be labelled, the rest ``unknown``); classes with
one example give no score, and at least one class needs two. The leave-one-out accuracy (own class
nearest) is reported. Embeddings are centred on the examples' mean before the cosine (the
encoder's embeddings share a large common component).

Measured (``bench/bench_examples.py``, 5 examples per syllable type from other recordings, 3
Bengalese finches, 7-11 types): 0.58-0.63 of the detected syllables get the right type (5-16%
``unknown``), 0.78-0.87 of the reference syllables; a balanced-accuracy threshold against the other
classes' scores left half the events ``unknown`` and was dropped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biomae import audio as audio_io
from biomae.audio import RECORDING_SUFFIXES
from biomae.detectors.wrapping import map_events
from biomae.spans import embed_spans, normalise

UNKNOWN = "unknown"
KEEP_FRACTION = 0.95  # of held-out examples at or above the unknown threshold
METHODS = ("prototype", "nearest")
TABLE_SUFFIXES = (".Table.1.selections.txt", ".selections.txt")


class ExamplesError(ValueError):
    """The examples folder cannot be used; the message names the folder or file and the fix."""


@dataclass(frozen=True)
class Example:
    """One example: a span of a file (``end_s`` None: the whole clip) and its class."""

    label: str
    path: Path
    start_s: float = 0.0
    end_s: float | None = None


def find_examples(folder: str | Path) -> tuple[list[Example], str]:
    """The examples under ``folder`` and its layout (``"folders"`` or ``"raven"``).

    Raises:
        ExamplesError: no such folder, fewer than 2 classes, a class with no clip, a selection
            table with no recording beside it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ExamplesError(f"--examples {folder}: no such folder")
    tables = sorted(p for p in folder.rglob("*") if p.name.endswith(".selections.txt"))
    if tables:
        examples, layout = _from_tables(folder, tables), "raven"
    else:
        examples, layout = _from_folders(folder), "folders"
    classes = sorted({e.label for e in examples})
    if len(classes) < 2:
        found = f"only class {classes[0]!r}" if classes else "no class"
        raise ExamplesError(
            f"--examples {folder}: {found}; labelling needs at least 2 classes "
            "(DIR/<label>/ folders of clips, or Raven tables whose label column names them)"
        )
    return examples, layout


def _from_folders(folder: Path) -> list[Example]:
    loose = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in RECORDING_SUFFIXES]
    if loose:
        raise ExamplesError(
            f"--examples {loose[0]}: a clip outside a class folder; put each clip in "
            f"{folder}/<label>/ (or give recordings with Raven tables beside them)"
        )
    examples = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        clips = sorted(
            p
            for p in class_dir.rglob("*")
            if p.is_file() and p.suffix.lower() in RECORDING_SUFFIXES
        )
        if not clips:
            raise ExamplesError(
                f"--examples {class_dir}: class {class_dir.name!r} has no audio clip; add a few "
                f"clips ({', '.join(sorted({s.lstrip('.') for s in RECORDING_SUFFIXES})[:6])}, "
                "...) or remove the folder"
            )
        examples += [Example(class_dir.name, clip) for clip in clips]
    return examples


def _from_tables(folder: Path, tables: list[Path]) -> list[Example]:
    from biomae.annotations import read_annotations

    examples = []
    for table in tables:
        stem = next(table.name[: -len(s)] for s in TABLE_SUFFIXES if table.name.endswith(s))
        audio = [
            p
            for p in sorted(table.parent.glob(f"{stem}.*"))
            if p.suffix.lower() in RECORDING_SUFFIXES and p.stem == stem
        ]
        if not audio:
            raise ExamplesError(
                f"--examples {table}: no recording {stem}.<wav|flac|...> beside this table; put "
                "the recording next to it or remove the table"
            )
        events = read_annotations(table, "raven")
        unlabelled = events["label"].astype(str).str.strip().eq("")
        if unlabelled.any():
            raise ExamplesError(
                f"--examples {table}: {int(unlabelled.sum())} selection(s) without a label; "
                "name the class of every selection (Annotation column) or remove them"
            )
        examples += [
            Example(str(e.label), audio[0], float(e.start_s), float(e.end_s))
            for e in events.itertuples()
        ]
    return examples


def fingerprint(examples: list[Example], folder: str | Path) -> str:
    """A short hash of the examples: labels, spans, file names and file contents."""
    digest = hashlib.sha256()
    for example in sorted(examples, key=lambda e: (str(e.path), e.start_s, e.label)):
        digest.update(f"{example.label}|{example.start_s}|{example.end_s}|".encode())
        digest.update(example.path.relative_to(folder).as_posix().encode())
    for path in sorted({e.path for e in examples}):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def embed_examples(embedder, examples: list[Example]) -> np.ndarray:
    """``(N, D)`` embeddings of the examples, in order (one pass per file).

    Raises:
        ExamplesError: a clip cannot be read (names it).
    """
    rows: list[np.ndarray | None] = [None] * len(examples)
    by_path: dict[Path, list[int]] = {}
    for i, example in enumerate(examples):
        by_path.setdefault(example.path, []).append(i)
    for path, indices in by_path.items():
        try:
            info = audio_io.info(path)
            starts = [examples[i].start_s for i in indices]
            ends = [
                examples[i].end_s if examples[i].end_s is not None else info.duration_s
                for i in indices
            ]
            vectors = embed_spans(embedder, path, starts, ends, info=info)
        except Exception as err:
            raise ExamplesError(
                f"--examples: cannot read {path} ({type(err).__name__}: {err}); convert it to "
                "WAV or FLAC, or remove it"
            ) from None
        for i, vector in zip(indices, vectors, strict=True):
            rows[i] = vector
    return np.stack(rows).astype(np.float32)


@dataclass
class Labeller:
    """Nearest class by cosine similarity, ``unknown`` below ``threshold`` (module docstring).

    Attributes:
        classes: the class names, sorted.
        embeddings: ``(N, D)`` unit-length example embeddings.
        labels: ``(N,)`` class index of each example.
        method: "prototype" or "nearest".
        threshold: similarity below which an event is ``unknown``.
        loo_accuracy: fraction of examples whose own class is nearest, leaving each out.
        centre: ``(D,)`` subtracted from every embedding before the cosine (the examples' mean
            when fitted with ``centre=True``: the encoder's embeddings share a large common
            component), or zeros.
    """

    classes: list[str]
    embeddings: np.ndarray
    labels: np.ndarray
    method: str = "nearest"
    threshold: float = 0.0
    loo_accuracy: float = float("nan")
    centre: np.ndarray | None = None

    @classmethod
    def fit(
        cls, embeddings: np.ndarray, names, method: str = "nearest", centre: bool = True
    ) -> Labeller:
        """A labeller of the examples ``embeddings`` (N, D) of classes ``names`` (N,), its
        threshold calibrated by leave-one-out."""
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not one of {METHODS}")
        classes = sorted(set(map(str, names)))
        labels = np.array([classes.index(str(n)) for n in names])
        embeddings = np.asarray(embeddings, np.float32)
        mean = embeddings.mean(0) if centre else np.zeros(embeddings.shape[1], np.float32)
        labeller = cls(classes, normalise(embeddings - mean), labels, method, centre=mean)
        own, other = labeller.leave_one_out()
        if not np.isfinite(own).any():
            raise ExamplesError(
                "every class has a single example: give at least 2 examples of one class to "
                "calibrate the unknown threshold"
            )
        known = np.isfinite(own)
        labeller.loo_accuracy = float(np.mean(own[known] > other[known]))
        labeller.threshold = float(np.quantile(own[known], 1 - KEEP_FRACTION))
        return labeller

    def _similarities(self, query: np.ndarray, leave_out: int | None = None) -> np.ndarray:
        """``(C,)`` similarity of one unit-length query to each class (-inf: no example left)."""
        keep = np.ones(len(self.labels), bool)
        if leave_out is not None:
            keep[leave_out] = False
        result = np.full(len(self.classes), -np.inf)
        for c in range(len(self.classes)):
            members = self.embeddings[keep & (self.labels == c)]
            if not len(members):
                continue
            if self.method == "prototype":
                result[c] = float(normalise(members.mean(axis=0)) @ query)
            else:
                result[c] = float((members @ query).max())
        return result

    def leave_one_out(self) -> tuple[np.ndarray, np.ndarray]:
        """Per example: similarity to its own class without it (NaN for a class's only example)
        and to the nearest other class."""
        own = np.full(len(self.labels), np.nan)
        other = np.full(len(self.labels), np.nan)
        for i, (query, c) in enumerate(zip(self.embeddings, self.labels, strict=True)):
            similarities = self._similarities(query, leave_out=i)
            if np.isfinite(similarities[c]):
                own[i] = similarities[c]
            other[i] = np.delete(similarities, c).max()
        return own, other

    def predict(self, embeddings: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Labels (class or ``unknown``) and best similarities of ``(M, D)`` embeddings."""
        queries = normalise(np.asarray(embeddings, np.float32) - self.centre)
        if self.method == "prototype":
            prototypes = np.stack(
                [
                    normalise(self.embeddings[self.labels == c].mean(0))
                    for c in range(len(self.classes))
                ]
            )
            table = queries @ prototypes.T  # (M, C)
        else:
            per_example = queries @ self.embeddings.T  # (M, N)
            table = np.stack(
                [per_example[:, self.labels == c].max(1) for c in range(len(self.classes))], 1
            )
        best = table.argmax(1) if len(table) else np.zeros(0, int)
        similarity = table[np.arange(len(table)), best] if len(table) else np.zeros(0)
        names = [
            self.classes[b] if s >= self.threshold else UNKNOWN
            for b, s in zip(best, similarity, strict=True)
        ]
        return names, similarity.astype(np.float64)


class LabellingDetector:
    """A detector whose events are labelled from examples (see the module docstring).

    Args:
        detector: any :class:`biomae.detectors.Detector`.
        embedder: what embeds spans (:func:`biomae.spans.embed_spans`).
        labeller: the fitted :class:`Labeller`.
        settings: what ``run.json`` records of the examples (folder, fingerprint, ...).
    """

    def __init__(self, detector, embedder, labeller: Labeller, settings: dict):
        from biomae.detectors import complete

        self.detector = complete(detector)
        self.name = self.detector.name
        self.embedder = embedder
        self.labeller = labeller
        self.settings = settings

    def params(self) -> dict:
        return {**self.detector.params(), "examples": self.settings}

    def name_for(self, path, info=None) -> str:
        return self.detector.name_for(path, info)

    def label(self, path, events: pd.DataFrame, info=None) -> pd.DataFrame:
        """``events`` with ``label`` set from the examples and a ``similarity`` column."""
        events = events.reset_index(drop=True).copy()
        if not len(events):
            return events.assign(similarity=pd.Series(dtype="float64"))
        vectors = embed_spans(
            self.embedder, path, events["start_s"].to_numpy(), events["end_s"].to_numpy(), info
        )
        names, similarity = self.labeller.predict(vectors)
        return events.assign(label=names, similarity=np.round(similarity, 4))

    def detect_file(self, path, recording=None, info=None) -> pd.DataFrame:
        return self.label(path, self.detector.detect_file(path, recording, info), info)

    def detect_many(self, paths, infos=None):
        yield from map_events(self.detector, paths, infos, self.label)


def labelling_detector(
    detector, folder: str | Path, embedder, method: str = "nearest", centre: bool = True
) -> LabellingDetector:
    """``detector`` labelling its events from the examples in ``folder`` (module docstring).

    Raises:
        ExamplesError: the folder cannot be used (names the folder or file and the fix).
    """
    folder = Path(folder)
    examples, layout = find_examples(folder)
    embeddings = embed_examples(embedder, examples)
    labeller = Labeller.fit(embeddings, [e.label for e in examples], method, centre)
    counts = pd.Series([e.label for e in examples]).value_counts().sort_index()
    settings = {
        "folder": str(folder),
        "layout": layout,
        "fingerprint": fingerprint(examples, folder),
        "classes": {str(k): int(v) for k, v in counts.items()},
        "method": method,
        "centre": centre,
        "embedder": str(getattr(embedder, "model_path", type(embedder).__name__)),
    }
    return LabellingDetector(detector, embedder, labeller, settings)


def default_embedder(device: str = "auto"):
    """The starter detector's encoder (``$BIOMAE_STARTER_MODEL`` or the packaged one) through
    :class:`biomae.embed.Embedder`: the model the labelling figures were measured with.
    ``biomae embed``'s default, the embedding model, is not yet measured for labelling."""
    from biomae.embed import Embedder
    from biomae.starter import default_model

    model = default_model()
    if model is None:
        raise ExamplesError("no embedding model is installed (the starter model is missing)")
    return Embedder(model, device=device)


def wrap_detector(
    detector, inputs, *, examples=None, shots=None, device: str = "auto", embedder=None
):
    """``detector`` labelling from ``examples`` (:func:`labelling_detector`) or finding the
    ``shots``' call type (:class:`biomae.fewshot.FewShotDetector`) — ``biomae annotate``'s
    ``--examples`` / ``--shots``; ``detector`` itself when neither is given. Returns the detector
    and a line for the user (or "").

    Raises:
        ValueError: both given, or ``shots`` with other than one recording (names the fix).
        ExamplesError, biomae.fewshot.ShotsError: see :func:`find_examples`, ``read_shots``.
    """
    if examples is None and shots is None:
        return detector, ""
    if examples is not None and shots is not None:
        raise ValueError("--examples and --shots: give one (labels from examples, or few-shot)")
    if shots is not None:
        from biomae.annotate import find_recordings
        from biomae.fewshot import FewShotDetector, read_shots

        recordings = find_recordings(inputs)
        if len(recordings) != 1:
            raise ValueError(
                f"--shots {shots} belongs to one recording, and the inputs hold "
                f"{len(recordings)}; annotate that recording alone"
            )
        events = read_shots(shots)
        found = FewShotDetector(detector, embedder or default_embedder(device), events, table=shots)
        last_s = float(events["end_s"].max())
        return found, f"shots: {len(events)} from {shots}; events reported after {last_s:g} s"
    labelled = labelling_detector(detector, examples, embedder or default_embedder(device))
    classes = ", ".join(f"{k} {v}" for k, v in labelled.settings["classes"].items())
    return labelled, (
        f"examples: {len(labelled.labeller.classes)} classes ({classes}) from {examples}; "
        f"leave-one-out accuracy {labelled.labeller.loo_accuracy:.2f}; "
        f"{UNKNOWN} below similarity {labelled.labeller.threshold:.3f}"
    )
