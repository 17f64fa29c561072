"""Small public animal-audio sources that anyone can clone: one adapter each, registered with the
commands that fetch it (:mod:`biomae.datasets.sources`, ``biomae data sources --root DIR``).

Recordings carry a ``role``: ``calls`` (animal sounds, clip-labelled), ``background`` (real
ambience that may hold unlabelled calls), ``negative`` (no animal sound: weather, water, machines)
— so that ``biomae data synth --background-catalog`` can pick backgrounds by role. Where a source
states terms per file (xeno-canto attributions, phoebe's licences) the recording's ``license``
holds them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from biomae.datasets.registry import LayoutError, audio_files, require
from biomae.datasets.sources import (  # noqa: F401  (SOURCES, find_source: re-exported)
    SOURCES,
    Source,
    _adapter,
    _clips,
    _read_csv,
    _under,
    find_source,
    sources_status,
)

# ---- InsectSet32 (the copy in juliankraft/TermPaper1-Ecoacoustics) ---------------------------

INSECTSET_LAYOUT = """\
ROOT/                                   git clone of juliankraft/TermPaper1-Ecoacoustics
  data/Cicadidae.csv, data/Orthoptera.csv   file_name, species, class_ID, data_set (split)
  data/Cicadidae/SPECIES/*.wav, data/Orthoptera/SPECIES/*.wav"""


def _insectset(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    audio, labels, splits, taxa = [], [], [], []
    for family in ("Cicadidae", "Orthoptera"):
        rows = _read_csv(root / "data" / f"{family}.csv", INSECTSET_LAYOUT)
        listed = dict(
            zip(rows["file_name"], zip(rows["species"], rows["data_set"], strict=True), strict=True)
        )
        for path in _under(root / "data", family, INSECTSET_LAYOUT):
            # a file the table does not list keeps its species folder as label, no split
            species, split = listed.get(path.name, (path.parent.name, ""))
            audio.append(path), labels.append(species), splits.append(split), taxa.append(family)
    recordings, events = _clips(audio, labels, ["calls"] * len(audio), taxa, [""] * len(audio))
    recordings["split"] = splits
    return recordings, events


_adapter(
    "insectset32",
    Source("insectset32", ("TermPaper1-Ecoacoustics", "juliankraft+TermPaper1-Ecoacoustics"),
           ("git clone https://github.com/juliankraft/TermPaper1-Ecoacoustics",)),
    convert=_insectset, layout=INSECTSET_LAYOUT,
    title="InsectSet32: Dataset for automatic acoustic identification of insects (copy)",
    citation="Faiß M. (2022), InsectSet32, Zenodo, doi:10.5281/zenodo.7072196",
    license="CC-BY-4.0 (original Zenodo record; the copy's repository states none)",
    taxa="Cicadidae (23 species), Orthoptera (9 species)",
    url="https://github.com/juliankraft/TermPaper1-Ecoacoustics",
    note="focal recordings; songs fill most of each clip; label = species, split = data_set",
)  # fmt: skip

# ---- bioacoustic-data-synthesis example inputs ----------------------------------------------

BDS_LAYOUT = """\
ROOT/example_input_dataset/              git clone of KasparSoltero/bioacoustic-data-synthesis
  vocalisations/EBIRD_CODE/*.wav         cut-out calls of NZ birds (role calls)
  vocalisations_xc/*.wav + tags.csv      xeno-canto clips; tags.csv: filename, attribution, species
  noise/*.wav + tags.csv                 real backgrounds (role background)
  negative/*.wav + tags.csv              rain, wind, thunder, ... (role negative)"""


def _tags(folder: Path) -> dict[str, dict]:
    path = folder / "tags.csv"
    if not path.is_file():
        return {}
    rows = pd.read_csv(path, dtype=str, encoding="utf-8-sig").fillna("")
    return {r["filename"]: r for r in rows.to_dict("records")}


def _synthesis_inputs(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    base = require(root / "example_input_dataset", "folder", BDS_LAYOUT)
    audio, labels, roles, taxa, licenses = [], [], [], [], []
    for path in _under(base, "vocalisations", BDS_LAYOUT):
        audio.append(path), labels.append(path.parent.name), roles.append("calls")
        taxa.append("Aves"), licenses.append("none stated: research use only")
    folders = (("vocalisations_xc", "calls"), ("noise", "background"), ("negative", "negative"),
               ("temp_noise_bp", "background"))  # fmt: skip
    for folder, folder_role in folders:
        if not (base / folder).is_dir():
            continue
        tags = _tags(base / folder)
        for path in audio_files(base / folder):
            tag = tags.get(path.name, {})
            species = tag.get("species", "") if folder_role == "calls" else ""
            # an xeno-canto clip without species ("Soundscape", "Identity unknown"): background
            role = "background" if folder_role == "calls" and not species else folder_role
            audio.append(path), roles.append(role), labels.append(species)
            taxa.append("Aves" if role == "calls" else "")
            credit = tag.get("attribution", "").strip()
            licenses.append(
                f"attribution: {credit}" if credit else "none stated: research use only"
            )
    return _clips(audio, labels, roles, taxa, licenses)


_adapter(
    "bioacoustic_synthesis",
    Source("bioacoustic_synthesis",
           ("bioacoustic-data-synthesis", "KasparSoltero+bioacoustic-data-synthesis"),
           ("git clone https://github.com/KasparSoltero/bioacoustic-data-synthesis",)),
    convert=_synthesis_inputs, layout=BDS_LAYOUT,
    title="bioacoustic-data-synthesis example input dataset",
    citation="Soltero K., bioacoustic-data-synthesis, https://github.com/KasparSoltero/"
    "bioacoustic-data-synthesis (see URL)",
    license="none stated for the repository: per-file attributions in tags.csv (license column)",
    taxa="New Zealand birds (13 species) + ~71 mostly African bird species (xeno-canto)",
    url="https://github.com/KasparSoltero/bioacoustic-data-synthesis",
    note="cut-out calls (boundaries derivable); real backgrounds and negatives (rain, wind)",
)  # fmt: skip

# ---- Animal-Sound-Dataset (Turkish class folders) --------------------------------------------

ANIMAL_SOUND_LAYOUT = """\
ROOT/                                   git clone of YashNita/Animal-Sound-Dataset
  Kedi-Part1/*.wav, Kopek-Part2/*.wav, Kus-Part1/*.wav, Kurbaga/*.wav, ...   one folder per class
  (Turkish names, mapped to English labels; -PartN suffixes merged)"""
TURKISH_CLASSES = {
    "aslan": ("lion", "Panthera leo"), "esek": ("donkey", "Equus asinus"),
    "inek": ("cow", "Bos taurus"), "kedi": ("cat", "Felis catus"),
    "kopek": ("dog", "Canis familiaris"), "koyun": ("sheep", "Ovis aries"),
    "kurbaga": ("frog", "Anura"), "kus": ("bird", "Aves"), "maymun": ("monkey", "Primates"),
    "tavuk": ("chicken", "Gallus gallus domesticus"),
}  # fmt: skip


def _animal_sound(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    audio, labels, taxa = [], [], []
    for path in audio_files(root):
        folder = re.sub(r"-part\d+$", "", path.parent.name.lower())
        if path.parent == root or folder not in TURKISH_CLASSES:
            raise LayoutError(
                f"{path}: folder {path.parent.name!r} is not a known class "
                f"({', '.join(TURKISH_CLASSES)})\nexpected layout:\n{ANIMAL_SOUND_LAYOUT}"
            )
        label, taxon = TURKISH_CLASSES[folder]
        audio.append(path), labels.append(label), taxa.append(taxon)
    return _clips(audio, labels, ["calls"] * len(audio), taxa, [""] * len(audio))


_adapter(
    "animal_sounds",
    Source("animal_sounds", ("Animal-Sound-Dataset", "YashNita+Animal-Sound-Dataset"),
           ("git clone https://github.com/YashNita/Animal-Sound-Dataset",)),
    convert=_animal_sound, layout=ANIMAL_SOUND_LAYOUT,
    title="Animal Sound Dataset (10 classes)",
    citation="Şaşmaz E., Tek F. B. (2018), Animal Sound Classification Using A Convolutional "
    "Neural Network, UBMK",
    license="none stated (sounds collected from an online sound site): research use only",
    taxa="cat, dog, bird, cow, lion, sheep, frog, chicken, donkey, monkey",
    url="https://github.com/YashNita/Animal-Sound-Dataset",
    note="uneven quality; some .wav files hold MP3 data (libsndfile reads them)",
)  # fmt: skip

# ---- Earth Species Project library ------------------------------------------------------------

ESP_LAYOUT = """\
ROOT/                                   git clone of earthspecies/library
  watkins/assets/SPECIES_NAME.wav                        one clip per marine-mammal species
  environmental_sound_classification/assets/CLASS.wav    one ESC-50 example per class
  tropical_soundscape/assets/*.flac                      one-minute rainforest soundscapes"""
ESC_ANIMALS = {
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "chirping_birds", "crickets",
}  # fmt: skip


def _esp_library(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    audio, labels, roles, taxa, licenses = [], [], [], [], []
    for path in _under(root, "watkins/assets", ESP_LAYOUT):
        audio.append(path), roles.append("calls"), taxa.append("Cetacea / Pinnipedia")
        labels.append(path.stem.replace("_", " ")), licenses.append(WATKINS_TERMS)
    esc = root / "environmental_sound_classification/assets"
    for path in audio_files(esc) if esc.is_dir() else []:
        animal = path.stem in ESC_ANIMALS
        audio.append(path), roles.append("calls" if animal else "negative")
        labels.append(path.stem if animal else ""), taxa.append("")
        licenses.append("CC-BY-NC-3.0 (ESC-50)")
    soundscapes = root / "tropical_soundscape/assets"
    for path in audio_files(soundscapes) if soundscapes.is_dir() else []:
        audio.append(path), roles.append("background"), labels.append(""), taxa.append("")
        licenses.append("Kaggle Rainforest Connection competition rules: research use only")
    return _clips(audio, labels, roles, taxa, licenses)


WATKINS_TERMS = "Watkins Marine Mammal Sound Database: free for personal and academic use"
_adapter(
    "esp_library",
    Source("esp_library", ("library", "earthspecies+library"),
           ("git clone https://github.com/earthspecies/library",)),
    convert=_esp_library, layout=ESP_LAYOUT,
    title="Earth Species Project library: example assets (Watkins, ESC-50, tropical soundscapes)",
    citation="Earth Species Project, library, https://github.com/earthspecies/library; Sayigh L. "
    "et al. (2016) Watkins; Piczak K. J. (2015) ESC-50, ACM MM",
    license="per file: Watkins non-commercial academic; ESC-50 CC-BY-NC-3.0; soundscapes "
    "competition rules",
    taxa="marine mammals (31 species), ESC-50 animal classes; non-animal ESC classes as negatives",
    url="https://github.com/earthspecies/library",
    note="ESC-50 non-animal classes have role negative; soundscapes role background",
)  # fmt: skip

# ---- microfaune --------------------------------------------------------------------------------

MICROFAUNE_LAYOUT = """\
ROOT/                                   git clone of microfaune/microfaune
  oiseaux.csv                           ;-separated: Nom pour fichier -> Nom latin
  viz/audio/species_mp3/FRENCH_NAME.mp3 one clip per species"""


def _microfaune(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    names = _read_csv(root / "oiseaux.csv", MICROFAUNE_LAYOUT, sep=";")
    latin = dict(zip(names["Nom pour fichier"], names["Nom latin"], strict=False))
    audio = _under(root, "viz/audio/species_mp3", MICROFAUNE_LAYOUT)
    labels = [latin.get(p.stem, p.stem) for p in audio]
    return _clips(audio, labels, ["calls"] * len(audio), ["Aves"] * len(audio),
                  ["none stated: research use only"] * len(audio))  # fmt: skip


_adapter(
    "microfaune",
    Source("microfaune", ("microfaune", "microfaune+microfaune"),
           ("git clone https://github.com/microfaune/microfaune",)),
    convert=_microfaune, layout=MICROFAUNE_LAYOUT,
    title="microfaune: European bird species clips",
    citation="microfaune project, https://github.com/microfaune/microfaune (see URL)",
    license="none stated: research use only",
    taxa="European birds (52 species)",
    url="https://github.com/microfaune/microfaune",
    note="label = Latin name from oiseaux.csv (the French file name when not listed)",
)  # fmt: skip

# ---- phoebe ------------------------------------------------------------------------------------

PHOEBE_LAYOUT = """\
ROOT/                                   git clone of danielcfurr/phoebe
  audio/data/app_data.json              {species: [{file_name, license, author, url, ...}]}
  audio/data/processed/*.mp3            6-s clips cut from xeno-canto recordings"""


def _phoebe(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    meta_path = require(root / "audio/data/app_data.json", "metadata", PHOEBE_LAYOUT)
    meta = {
        row["file_name"]: row for rows in json.loads(meta_path.read_text()).values() for row in rows
    }
    audio = _under(root, "audio/data/processed", PHOEBE_LAYOUT)
    missing = [p.name for p in audio if p.name not in meta]
    if missing:
        raise LayoutError(f"{meta_path}: no entry for {missing[0]} ({len(missing)} files)")
    rows = [meta[p.name] for p in audio]
    licenses = [
        f"https:{r['license']} ({r['author']}, https:{r['url']})".replace("https:https:", "https:")
        for r in rows
    ]
    labels = [r["scientific_name"] for r in rows]
    return _clips(audio, labels, ["calls"] * len(audio), ["Aves"] * len(audio), licenses)


_adapter(
    "phoebe",
    Source("phoebe", ("phoebe", "danielcfurr+phoebe"),
           ("git clone https://github.com/danielcfurr/phoebe",)),
    convert=_phoebe, layout=PHOEBE_LAYOUT,
    title="phoebe: North American bird song clips",
    citation="Furr D. C., phoebe, https://github.com/danielcfurr/phoebe; recordings from "
    "xeno-canto (authors per file)",
    license="per file (license column): CC-BY-NC-SA (most), one CC-BY-SA",
    taxa="North American birds (10 species)",
    url="https://github.com/danielcfurr/phoebe",
    note="calls are sparse inside the 6-s clips",
)  # fmt: skip

# ---- UtrechtUniversity animal-sounds (chimpanzees) ---------------------------------------------

CHIMP_LAYOUT = """\
ROOT/                                   git clone of UtrechtUniversity/animal-sounds
  test_data/processed_wav_files/chimpanzee.csv           wav, type (call type)
  test_data/processed_wav_files/vocalizations/*.wav      chimpanzee calls (role calls)
  test_data/synthetic_intermediate/background/*.wav      Congo forest (role background)"""


def _chimpanzees(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    base = root / "test_data"
    rows = _read_csv(base / "processed_wav_files/chimpanzee.csv", CHIMP_LAYOUT)
    kind = dict(zip(rows["wav"], rows["type"], strict=False))
    calls = _under(base, "processed_wav_files/vocalizations", CHIMP_LAYOUT)
    background = audio_files(base / "synthetic_intermediate/background")
    audio = calls + background
    labels = [f"chimpanzee {kind.get(p.name, '').strip()}".strip() for p in calls]
    labels += [""] * len(background)
    roles = ["calls"] * len(calls) + ["background"] * len(background)
    taxa = ["Pan troglodytes"] * len(calls) + [""] * len(background)
    return _clips(audio, labels, roles, taxa, ["Apache-2.0"] * len(audio))


_adapter(
    "chimpanzee_utrecht",
    Source("chimpanzee_utrecht", ("animal-sounds", "UtrechtUniversity+animal-sounds"),
           ("git clone https://github.com/UtrechtUniversity/animal-sounds",)),
    convert=_chimpanzees, layout=CHIMP_LAYOUT,
    title="animal-sounds test data: chimpanzee vocalizations and Congo forest background",
    citation="Utrecht University Research Engineering, animal-sounds, "
    "https://github.com/UtrechtUniversity/animal-sounds (see URL)",
    license="Apache-2.0",
    taxa="Pan troglodytes (chimpanzee), Mefou sanctuary, Cameroon",
    url="https://github.com/UtrechtUniversity/animal-sounds",
    note="label = 'chimpanzee' + call type; their synth_data mixes are not imported",
)  # fmt: skip

# ---- Debian packages: 0 A.D. game data, Scratch ------------------------------------------------

ZEROAD_LAYOUT = """\
ROOT/audio/                             public.zip of Debian 0ad-data, audio/ unpacked
  actor/fauna/{animal,death,movement}/*.ogg   animal sounds (role calls; label = name prefix)
  ambient/dayscape/*.ogg                      bird / insect ambiences (role background)
  ambient/{weather,water}/*.ogg               rain, wind, river, waves (role negative)"""


def _prefix_label(path: Path) -> str:
    return re.sub(r"(_\d+|_order)+$", "", path.stem)


def _zero_ad(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    base = require(root / "audio", "audio folder", ZEROAD_LAYOUT)
    parts: list[tuple[list[Path], str]] = [
        (_under(base, "actor/fauna", ZEROAD_LAYOUT), "calls"),
        (audio_files(base / "ambient/dayscape"), "background"),
        (audio_files(base / "ambient/weather") + audio_files(base / "ambient/water"), "negative"),
    ]
    audio = [p for paths, _ in parts for p in paths]
    roles = [role for paths, role in parts for _ in paths]
    labels = [_prefix_label(p) if r == "calls" else "" for p, r in zip(audio, roles, strict=True)]
    return _clips(audio, labels, roles, [""] * len(audio), ["CC-BY-SA-3.0"] * len(audio))


_DEB = "apt-get download {0} && dpkg-deb -x {0}_*.deb {0}-deb"
_adapter(
    "zero_ad",
    Source("zero_ad", ("0ad-data", "0ad"), (
        _DEB.format("0ad-data"),
        "unzip -q 0ad-data-deb/usr/share/games/0ad/mods/public/public.zip 'audio/actor/fauna/*' "
        "'audio/ambient/*' -d 0ad-data && rm -r 0ad-data-deb 0ad-data_*.deb",
    )),
    convert=_zero_ad, layout=ZEROAD_LAYOUT,
    title="0 A.D. game data: fauna and ambient sounds",
    citation="Wildfire Games, 0 A.D. (0ad-data, Debian package), https://play0ad.com",
    license="CC-BY-SA-3.0",
    taxa="domestic and wild animals (game sound effects); ambiences, rain, wind, water",
    url="https://packages.debian.org/bookworm/0ad-data",
    note="sound-design recordings, not field data: weather/water are the negatives",
)  # fmt: skip

SCRATCH_LAYOUT = """\
ROOT/usr/share/scratch/Media/Sounds/Animal/*.wav|mp3   Debian scratch package, unpacked
                                                       (label = file name without digits)"""


def _scratch(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    audio = _under(root, "usr/share/scratch/Media/Sounds/Animal", SCRATCH_LAYOUT)
    labels = [re.sub(r"\d+$", "", p.stem) for p in audio]
    return _clips(audio, labels, ["calls"] * len(audio), [""] * len(audio),
                  ["CC-BY-SA-3.0"] * len(audio))  # fmt: skip


_adapter(
    "scratch_animals",
    Source("scratch_animals", ("scratch",),
           ("apt-get download scratch && dpkg-deb -x scratch_*.deb scratch",)),
    convert=_scratch, layout=SCRATCH_LAYOUT,
    title="Scratch 1.4 media library: animal sounds",
    citation="MIT Media Lab Lifelong Kindergarten, Scratch 1.4 (Debian package scratch)",
    license="CC-BY-SA-3.0",
    taxa="farm and pet animals (17 sounds)",
    url="https://packages.debian.org/bookworm/scratch",
)  # fmt: skip
