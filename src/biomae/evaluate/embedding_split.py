"""The species split of the shipped embedding model: what it may train on, what it is scored on.

Held-out sets (:data:`HELDOUT_SETS`) hold only species — or kinds of animal — that the embedding
model never sees in training, labelled or not. :func:`training_clips` builds the training list
from :data:`TRAIN_SOURCES` and refuses (``ValueError``) any clip whose source or label belongs
to a held-out set, so a recipe cannot train on an evaluation species by accident.

Held out (six sets, as in issue 18: song types, individuals, call types, species, animals):

- ``gibbon_calls``: the shared data's gibbon_workflow clips — Bornean gibbon call types,
  great argus, hornbills, forest noise (call types and species; research use only);
- ``finch_song_types``: Bengalese-finch syllable types of one bird (koumura_bird0, labels 1-8
  and 0, CC-BY-4.0); the whole species is held out;
- ``finch_individuals``: which of two Bengalese finches sang a syllable (bfsongrepo
  bl26lb16 / gy6or6, CC-BY-4.0);
- ``insects_heldout``: the 16 InsectSet32 species of :data:`INSECT_HELDOUT_SPECIES` (every
  second species in alphabetical order; the other 16 are training species);
- ``animals``: Animal-Sound-Dataset's 10 kinds (bird, cat, chicken, cow, dog, donkey, frog,
  lion, monkey, sheep; research use only) — so the 0 A.D. and Scratch sounds of those kinds
  (:data:`TRAIN_EXCLUDED_LABELS`), and every bird, are left out of training;
- ``na_birds``: phoebe's 10 North-American bird species (CC-BY-NC-SA: evaluation only).

Each held-out clip is a span ``(path, start_s, end_s)``: a clip-labelled file's first
:data:`MAX_CLIP_S` seconds, or a syllable with :data:`SYLLABLE_MARGIN_S` either side.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

MAX_CLIP_S = 10.0  # a clip's first seconds are scored
SYLLABLE_MARGIN_S = 0.05  # context either side of a syllable
SEED = 0  # which clips a capped label keeps

INSECTSET_SPECIES = (
    "Azanicadazuluensis", "Brevisianabrevis", "Chorthippusbiguttulus", "Chorthippusbrunneus",
    "Grylluscampestris", "Kikihiamuta", "Myopsaltaleona", "Myopsaltalongicauda",
    "Myopsaltamackinlayi", "Myopsaltamelanobasis", "Myopsaltaxerograsidia", "Nemobiussylvestris",
    "Oecanthuspellucens", "Pholidopteragriseoaptera", "Platypleuracapensis",
    "Platypleuracfcatenata", "Platypleurachalybaea", "Platypleuradeusta", "Platypleuradivisa",
    "Platypleurahaglundi", "Platypleurahirtipennis", "Platypleuraintercapedinis",
    "Platypleuraplumosa", "Platypleurasp04", "Platypleurasp10", "Platypleurasp11cfhirtipennis",
    "Platypleurasp12cfhirtipennis", "Platypleurasp13", "Pseudochorthippusparallelus",
    "Pycnasemiclara", "Roeselianaroeselii", "Tettigoniaviridissima",
)  # fmt: skip
INSECT_HELDOUT_SPECIES = INSECTSET_SPECIES[1::2]  # 16 evaluation species
INSECT_TRAIN_SPECIES = INSECTSET_SPECIES[0::2]  # 16 training species

# name: (where, source, label rule, most clips per label)
HELDOUT_SETS: dict[str, tuple[str, str, str, int]] = {
    "gibbon_calls": ("shared", "gibbon_workflow", "clip label", 30),
    "finch_song_types": ("shared", "koumura_bird0", "syllable label", 20),
    "finch_individuals": ("shared", "bfsongrepo", "bird of the syllable", 60),
    "insects_heldout": ("sources", "insectset32", "species in INSECT_HELDOUT_SPECIES", 12),
    "animals": ("sources", "animal_sounds", "clip label", 20),
    "na_birds": ("sources", "phoebe", "clip label", 10),
}
# sources whose audio never enters training (every species in them is held out)
HELDOUT_SOURCES = (
    "gibbon_workflow", "behaviouR", "koumura_bird0", "bfsongrepo", "whisperseg",
    "animal_sounds", "phoebe",
)  # fmt: skip

# training: clip-labelled sources with permissive licences, and unlabeled shared recordings
TRAIN_SOURCES = ("insectset32", "zero_ad", "scratch_animals", "chimpanzee_utrecht")
# labels of those sources that name a held-out kind (the animals set) or a bird (every set of
# birds is held out): matched case-insensitively anywhere in the label
TRAIN_EXCLUDED_LABELS = (
    "bird", "cat", "kitten", "meow", "chicken", "rooster", "cow", "cattle", "dog", "donkey",
    "frog", "lion", "monkey", "sheep", "duck", "goose", "owl", "flamingo", "peacock",
)  # fmt: skip
UNLABELED_SHARED_SOURCES = (
    "scikit-maad_indices", "opensoundscape", "birdvoxdetect_unlabeled", "bmz_noise",
    "perch_testdata", "pykanto_great_tit_clips",
)  # fmt: skip
TRAIN_LICENSES = {
    "insectset32": "CC-BY-4.0 (Faiss 2022, Zenodo 7072196)",
    "zero_ad": "CC-BY-SA-3.0 (Wildfire Games, 0 A.D.)",
    "scratch_animals": "CC-BY-SA-3.0 (MIT Media Lab, Scratch 1.4)",
    "chimpanzee_utrecht": "Apache-2.0 (Utrecht University animal-sounds)",
}


def excluded_label(label: str) -> bool:
    """True when a training label names a held-out kind (:data:`TRAIN_EXCLUDED_LABELS`)."""
    return bool(re.search("|".join(TRAIN_EXCLUDED_LABELS), label.lower()))


def _source_table(sources_root: Path, name: str) -> pd.DataFrame:
    """The adapter's recordings table of one public source under ``sources_root``."""
    from biomae.datasets import adapters_sources
    from biomae.datasets.registry import get_adapter

    source = next(s for s in adapters_sources.SOURCES if s.dataset == name)
    folder = adapters_sources.find_source(sources_root, source)
    if folder is None:
        raise FileNotFoundError(
            f"source {name} is not under {sources_root}; get it with: {'; '.join(source.get)}"
        )
    recordings, _ = get_adapter(name).convert(folder)
    recordings["path"] = recordings["path"].astype(str)
    return recordings


def _cap(table: pd.DataFrame, per_label: int) -> pd.DataFrame:
    """At most ``per_label`` rows of each label, drawn with :data:`SEED`; labels with < 2 rows
    dropped (leave-one-out needs a second example)."""
    rng = np.random.default_rng(SEED)
    table = table.sort_values(["label", "path", "start_s"]).reset_index(drop=True)
    keep = []
    for _, rows in table.groupby("label", sort=True):
        if len(rows) >= 2:
            keep += sorted(rng.permutation(rows.index.to_numpy())[:per_label].tolist())
    return table.loc[keep].reset_index(drop=True)


def _clip_spans(paths, labels) -> pd.DataFrame:
    return pd.DataFrame(
        {"path": list(paths), "label": list(labels), "start_s": 0.0, "end_s": MAX_CLIP_S}
    )


def _syllables(data_root: Path, source: str, label_of) -> pd.DataFrame:
    events = pd.read_csv(data_root / "index" / "events.csv", dtype={"label": str})
    events = events[(events["source"] == source) & events["label"].notna()]
    return pd.DataFrame(
        {
            "path": [str(data_root / f) for f in events["file"]],
            "label": [label_of(row) for row in events.itertuples()],
            "start_s": np.maximum(0.0, events["onset_s"].to_numpy() - SYLLABLE_MARGIN_S),
            "end_s": events["offset_s"].to_numpy() + SYLLABLE_MARGIN_S,
        }
    )


def heldout_set(name: str, data_root: Path, sources_root: Path) -> pd.DataFrame:
    """One held-out set: ``path, label, start_s, end_s`` (capped per label, see the module)."""
    if name not in HELDOUT_SETS:
        raise ValueError(f"unknown held-out set {name!r}; known: {sorted(HELDOUT_SETS)}")
    _, source, _, per_label = HELDOUT_SETS[name]
    if name == "gibbon_calls":
        clips = pd.read_csv(data_root / "index" / "clips.csv", dtype=str, keep_default_na=False)
        clips = clips[clips["source"] == source]
        table = _clip_spans([str(data_root / f) for f in clips["file"]], clips["label"])
    elif name == "finch_song_types":
        table = _syllables(data_root, source, lambda row: str(row.label))
    elif name == "finch_individuals":
        table = _syllables(data_root, source, lambda row: Path(row.file).parts[5])
        table = table[table["label"].isin(["bl26lb16", "gy6or6"])]
    else:
        recordings = _source_table(sources_root, source)
        recordings = recordings[recordings["role"] == "calls"]
        if name == "insects_heldout":
            recordings = recordings[recordings["label"].isin(INSECT_HELDOUT_SPECIES)]
        table = _clip_spans(recordings["path"], recordings["label"])
    return _cap(table, per_label)


def training_clips(sources_root: Path, data_root: Path | None = None) -> pd.DataFrame:
    """Training recordings: ``path, label, source, license``; ``label`` is empty for unlabeled
    audio (the shared data's :data:`UNLABELED_SHARED_SOURCES` when ``data_root`` is given, and
    the sources' backgrounds). Labels of held-out kinds are dropped (:func:`excluded_label`).

    Raises:
        ValueError: a clip is an InsectSet32 held-out species or comes from a held-out source
            (:func:`check_disjoint`).
    """
    tables = []
    for name in TRAIN_SOURCES:
        recordings = _source_table(sources_root, name)
        recordings = recordings[recordings["role"].isin(["calls", "background"])].copy()
        recordings.loc[recordings["role"] != "calls", "label"] = ""
        if name == "insectset32":
            recordings = recordings[recordings["label"].isin(INSECT_TRAIN_SPECIES)]
        recordings = recordings[~recordings["label"].map(excluded_label)]
        tables.append(
            pd.DataFrame(
                {
                    "path": recordings["path"],
                    "label": [f"{name}:{lab}" if lab else "" for lab in recordings["label"]],
                    "source": name,
                    "license": TRAIN_LICENSES[name],
                }
            )
        )
    if data_root is not None:
        files = pd.read_csv(data_root / "index" / "files.csv", dtype=str, keep_default_na=False)
        files = files[files["source"].isin(UNLABELED_SHARED_SOURCES)]
        tables.append(
            pd.DataFrame(
                {
                    "path": [str(data_root / f) for f in files["file"]],
                    "label": "",
                    "source": files["source"].to_numpy(),
                    "license": files["license"].to_numpy(),
                }
            )
        )
    table = pd.concat(tables, ignore_index=True)
    check_disjoint(table)
    return table


def check_disjoint(training: pd.DataFrame) -> None:
    """Raise ``ValueError`` naming the first training row that belongs to a held-out set."""
    for row in training.itertuples():
        species = row.label.partition(":")[2]
        if row.source in HELDOUT_SOURCES or species in INSECT_HELDOUT_SPECIES:
            raise ValueError(
                f"training clip {row.path} ({row.source}, {row.label!r}) belongs to a held-out "
                "set of biomae.evaluate.embedding_split; remove it from training"
            )
        if species and excluded_label(species):
            raise ValueError(f"training label {row.label!r} ({row.path}) names a held-out kind")
