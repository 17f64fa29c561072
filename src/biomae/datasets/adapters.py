"""The datasets biomae is built on: one registered :class:`DatasetAdapter` each.

Metadata is what the publishers state; where a detail could not be checked, the entry says
"see URL" rather than guess. ``layout`` is the tree ``convert`` expects under the folder given to
``biomae data import NAME PATH`` — the published archive unpacked, unless the note says otherwise.
Users download every dataset themselves; nothing here touches the network.
"""

from __future__ import annotations

from biomae.datasets.layouts import (
    birdvox,
    koumura,
    one_table,
    paired_files,
    parent_name,
)
from biomae.datasets.registry import DatasetAdapter, register, register_layout

RAVEN_SUFFIXES = (".Table.1.selections.txt", ".selections.txt")
BENGALESE_FINCH = "Lonchura striata domestica"

# ---- annotated soundscapes: audio + Raven tables, or audio + one Raven-style annotations.csv ----

SOUNDSCAPE_CSV_LAYOUT = """\
ROOT/
  annotations.csv          Filename, Start Time (s), End Time (s), Low Freq (Hz), High Freq (Hz),
                           Species eBird Code
  soundscape_data/*.flac   the hour-long recordings named in Filename"""


def _zenodo_soundscape(name: str, title: str, citation: str, url: str, taxa: str) -> None:
    register(
        DatasetAdapter(
            name=name,
            title=title,
            citation=citation,
            license="CC-BY-4.0",
            taxa=taxa,
            url=url,
            annotation_format="csv (Raven columns + Filename)",
            layout=SOUNDSCAPE_CSV_LAYOUT,
            task="detection",
            convert=one_table(
                "annotations.csv",
                SOUNDSCAPE_CSV_LAYOUT,
                audio_dir="soundscape_data",
                file_column="Filename",
                start_column="Start Time (s)",
                end_column="End Time (s)",
                low_column="Low Freq (Hz)",
                high_column="High Freq (Hz)",
                label_column="Species eBird Code",
            ),
            note="fully annotated by experts; labels are eBird codes; layout as the Zenodo record "
            "(annotations.csv + soundscape_data.zip unpacked): check it against your download",
        )
    )


_zenodo_soundscape(
    "northeast_us",
    "A collection of fully-annotated soundscape recordings from the Northeastern United States",
    "Kahl S., Charif R., Klinck H. (2022), Zenodo, doi:10.5281/zenodo.7079380",
    "https://zenodo.org/records/7079380",
    "birds (81 species), Sapsucker Woods, Ithaca NY",
)
_zenodo_soundscape(
    "western_us",
    "A collection of fully-annotated soundscape recordings from the Western United States",
    "Kahl S., et al. (2022), Zenodo, doi:10.5281/zenodo.7050014",
    "https://zenodo.org/records/7050014",
    "birds (56 species), Lassen and Plumas National Forests, California",
)
_zenodo_soundscape(
    "sierra_nevada",
    "A collection of fully-annotated soundscape recordings from the southern Sierra Nevada "
    "mountain range",
    "Clapp M., Kahl S., et al. (2023), Zenodo, doi:10.5281/zenodo.7525805",
    "https://zenodo.org/records/7525805",
    "birds, southern Sierra Nevada, California",
)
_zenodo_soundscape(
    "hawaii_birds",
    "A collection of fully-annotated soundscape recordings from the Island of Hawai'i",
    "Navine A., Kahl S., et al. (2022), Zenodo, doi:10.5281/zenodo.7078499",
    "https://zenodo.org/records/7078499",
    "birds (native and introduced), Island of Hawai'i",
)
_zenodo_soundscape(
    "southwest_amazon",
    "A collection of fully-annotated soundscape recordings from the Southwestern Amazon Basin",
    "Hopping W. A., Kahl S., Klinck H. (2022), Zenodo, doi:10.5281/zenodo.7079124",
    "https://zenodo.org/records/7079124",
    "birds, Madre de Dios, Peru",
)
_zenodo_soundscape(
    "coffee_farms",
    "A collection of fully-annotated soundscape recordings from neotropical coffee farms in "
    "Colombia and Costa Rica",
    "Vega-Hidalgo A., Kahl S., et al. (2023), Zenodo, doi:10.5281/zenodo.7525349",
    "https://zenodo.org/records/7525349",
    "birds, coffee farms in Colombia and Costa Rica",
)

ENA_LAYOUT = """\
ROOT/
  Recording_1/Recording_1_Segment_01.mp3 ...        (wav/flac copies are accepted too)
  Annotation_Files/Recording_1/Recording_1_Segment_01.Table.1.selections.txt ...
  (a Raven table matches the audio file of the same name, anywhere under ROOT)"""
register(
    DatasetAdapter(
        name="ena_birds",
        title="An annotated set of audio recordings of Eastern North American birds containing "
        "frequency, time, and species information",
        citation="Chronister L. M., Rhinehart T. A., Place A., Kitzes J. (2021), Ecology 102(6) "
        "e03329, doi:10.1002/ecy.3329; data doi:10.5061/dryad.d2547d81z",
        license="CC0-1.0",
        taxa="birds (48 species), Powdermill Nature Reserve, Pennsylvania",
        url="https://doi.org/10.5061/dryad.d2547d81z",
        annotation_format="raven",
        layout=ENA_LAYOUT,
        task="detection",
        convert=paired_files(
            "raven",
            RAVEN_SUFFIXES,
            ENA_LAYOUT,
            read_options={"label_column": "Species"},
            path_meta={"site": parent_name(1)},
        ),
        note="labels are four-letter bird codes (Species column)",
    )
)

RAVEN_LAYOUT = """\
ROOT/
  **/NAME.wav (or .flac)                  recordings
  **/NAME.Table.1.selections.txt          Raven selection table of NAME (same name, any folder)"""


def _raven_dataset(name: str, title: str, citation: str, license: str, taxa: str, url: str,
                   note: str, annotation: str = "full") -> None:  # fmt: skip
    register_layout(
        name, title, citation, license, taxa, url, note,
        annotation_format="raven", layout=RAVEN_LAYOUT, task="detection",
        convert=paired_files("raven", RAVEN_SUFFIXES, RAVEN_LAYOUT, annotation=annotation),
    )  # fmt: skip


_raven_dataset(
    "dawn_chorus",
    "Audio tagging of avian dawn chorus recordings in California, Oregon and Washington",
    "Weldy M., Denton T., et al. (2024), Biodiversity Data Journal 12: e118315, "
    "doi:10.3897/BDJ.12.e118315",
    "see URL (journal article CC-BY-4.0; data license stated with the data)",
    "birds, mammals, amphibians of Pacific Northwest forests",
    "https://doi.org/10.3897/BDJ.12.e118315",
    "141 of 1,575 recordings are fully annotated; arrange them as audio + Raven tables (see URL "
    "for the published table format); audio without a table is registered unlabeled",
)
_raven_dataset(
    "hiceas",
    "HICEAS 2017 towed-array recordings (NOAA PIFSC), as used by the BEANS benchmark",
    "see URL (Hagiwara M. et al. 2023, BEANS, ICASSP; NOAA Pacific Islands Fisheries Science "
    "Center)",
    "see URL (US government data)",
    "cetaceans, Hawaiian Islands",
    "https://github.com/earthspecies/beans",
    "arrange as audio + Raven tables; see URL for obtaining the NOAA recordings",
)
_raven_dataset(
    "sperm_whales",
    "Sperm whale click / coda recordings",
    "see URL (not verified here)",
    "see URL",
    "Physeter macrocephalus",
    "https://cis.whoi.edu/science/B/whalesounds/",
    "layout assumed: audio + Raven tables of clicks/codas; check the source you download from",
)
_raven_dataset(
    "multimodal_birds",
    "Multimodal bird recordings (audio part)",
    "see URL (not verified here)",
    "see URL",
    "birds",
    "see URL",
    "source and license not verified; arrange as audio + Raven tables",
    annotation="partial",
)

# ---- datasets with their own per-file formats ------------------------------------------------

BFSONG_LAYOUT = """\
ROOT/
  BIRD/DAY/NAME.cbin            (or NAME.wav, or a converted NAME.cbin.flac)
  BIRD/DAY/NAME.cbin.not.mat    evsonganaly annotation of NAME.cbin
  BIRD/DAY/NAME.rec             recorder metadata (not needed)"""
register(
    DatasetAdapter(
        name="bfsongrepo",
        title="Bengalese Finch Song Repository",
        citation="Nicholson D., Queen J. E., Sober S. J. (2017), figshare, "
        "doi:10.6084/m9.figshare.4805749",
        license="CC-BY-4.0",
        taxa=f"{BENGALESE_FINCH} (Bengalese finch), 4 birds",
        url="https://doi.org/10.6084/m9.figshare.4805749",
        annotation_format="notmat",
        layout=BFSONG_LAYOUT,
        task="detection",
        convert=paired_files(
            "notmat",
            (".not.mat",),
            BFSONG_LAYOUT,
            taxon=BENGALESE_FINCH,
            path_meta={"individual": parent_name(2)},
        ),
        note="song syllables only; calls and cage noise are not labelled",
    )
)

KOUMURA_LAYOUT = """\
ROOT/
  Bird0/Annotation.xml      onsets/lengths in samples, per sequence
  Bird0/Wave/0.wav ...      (flac copies accepted)
  Bird1/ ..."""
register(
    DatasetAdapter(
        name="koumura",
        title="BirdsongRecognition: Bengalese finch song with syllable annotation",
        citation="Koumura T., Okanoya K. (2016), PLoS ONE 11(7): e0159188; data figshare "
        "doi:10.6084/m9.figshare.3470165",
        license="CC-BY-4.0",
        taxa=f"{BENGALESE_FINCH} (Bengalese finch), 11 birds",
        url="https://doi.org/10.6084/m9.figshare.3470165",
        annotation_format="koumura",
        layout=KOUMURA_LAYOUT,
        task="detection",
        convert=koumura(KOUMURA_LAYOUT, taxon=BENGALESE_FINCH),
    )
)

CANARY_LAYOUT = """\
ROOT/
  **/NAME.wav                    song recordings (one bird, M1-2016-spring)
  **/NAME.audacity.txt           Audacity label track of NAME (same name, any folder)"""
register(
    DatasetAdapter(
        name="canaries",
        title="Labeled songs of domestic canary M1-2016-spring (Serinus canaria)",
        citation="Giraudon J., Trouvain N., Cazala A., Del Negro C., Hinaut X. (2022), Zenodo, "
        "doi:10.5281/zenodo.6521932 (as cited by crowsetta's test data; see URL)",
        license="CC-BY-4.0",
        taxa="Serinus canaria domestica (domestic canary), one male",
        url="https://doi.org/10.5281/zenodo.6521932",
        annotation_format="audacity",
        layout=CANARY_LAYOUT,
        task="detection",
        convert=paired_files(
            "audacity", (".audacity.txt", ".txt"), CANARY_LAYOUT, taxon="Serinus canaria"
        ),
        note="'SIL' segments are silence labels kept as events; filter them for training",
    )
)

WHISPERSEG_LAYOUT = """\
ROOT/
  **/NAME.wav      recordings
  **/NAME.json     {"onset": [...], "offset": [...], "cluster": [...]} in seconds"""
register(
    DatasetAdapter(
        name="whisperseg",
        title="WhisperSeg example data (zebra finch, Bengalese finch, ...)",
        citation="Gu N., Lee K., Basha M., et al. (2024), Positive transfer of the Whisper speech "
        "transformer to human and animal voice activity detection, ICASSP",
        license="none stated: research use only",
        taxa="Taeniopygia guttata, Lonchura striata domestica and others",
        url="https://github.com/nianlonggu/WhisperSeg",
        annotation_format="whisperseg",
        layout=WHISPERSEG_LAYOUT,
        task="detection",
        convert=paired_files("whisperseg", (".json",), WHISPERSEG_LAYOUT),
    )
)

TIMIT_LAYOUT = """\
ROOT/
  TRAIN/DR1/SPEAKER/SA1.WAV      NIST SPHERE (or wav/flac)
  TRAIN/DR1/SPEAKER/SA1.PHN      phone segments in samples (16 kHz)
  TEST/..."""
register(
    DatasetAdapter(
        name="timit",
        title="DARPA TIMIT Acoustic-Phonetic Continuous Speech Corpus",
        citation="Garofolo J. S., et al. (1993), TIMIT, Linguistic Data Consortium LDC93S1",
        license="LDC User Agreement (not redistributable)",
        taxa="Homo sapiens (read speech, 630 speakers)",
        url="https://catalog.ldc.upenn.edu/LDC93S1",
        annotation_format="timit",
        layout=TIMIT_LAYOUT,
        task="detection",
        convert=paired_files(
            "timit",
            (".PHN", ".phn"),
            TIMIT_LAYOUT,
            taxon="Homo sapiens",
            path_meta={
                "individual": parent_name(1),
                "site": parent_name(2),
                "split": parent_name(3),
            },
        ),
        note="human speech: a phone-segmentation reference task, not bioacoustics",
    )
)

DCASE_LAYOUT = """\
ROOT/
  Development_Set/Training_Set/{BV,HT,JD,MT,WMW}/NAME.wav + NAME.csv
  Development_Set/Validation_Set/{HB,ME,PB}/NAME.wav + NAME.csv
  (NAME.csv: Audiofilename, Starttime, Endtime, CLASS_1 ... with POS / NEG / UNK)"""
register(
    DatasetAdapter(
        name="dcase_fewshot",
        title="DCASE few-shot bioacoustic event detection development set",
        citation="Nolasco I., Singh S., et al. (2023), Learning to detect an animal sound from "
        "five examples, Ecological Informatics 77: 102258; data doi:10.5281/zenodo.6482837",
        license="CC-BY-4.0",
        taxa="birds, mammals (meerkats, hyenas, bats), ...",
        url="https://doi.org/10.5281/zenodo.6482837",
        annotation_format="dcase",
        layout=DCASE_LAYOUT,
        task="detection",
        convert=paired_files(
            "dcase",
            (".csv",),
            DCASE_LAYOUT,
            path_meta={"site": parent_name(1), "split": parent_name(2)},
        ),
        note="UNK rows are uncertain calls; the reader keeps them with their label",
    )
)

BIRDVOX_LAYOUT = """\
ROOT/
  BirdVox-full-night_wav-audio_unit01.wav ...            10-hour recordings, 6 units
  BirdVox-full-night_csv-annotations_unit01.csv ...      point annotations (time, frequency)"""
register(
    DatasetAdapter(
        name="birdvox_full_night",
        title="BirdVox-full-night: a dataset for avian flight call detection",
        citation="Lostanlen V., Salamon J., Farnsworth A., Kelling S., Bello J. P. (2018), "
        "ICASSP; data doi:10.5281/zenodo.1205569",
        license="CC-BY-4.0",
        taxa="nocturnal flight calls of migrating passerines, Ithaca NY",
        url="https://doi.org/10.5281/zenodo.1205569",
        annotation_format="birdvox",
        layout=BIRDVOX_LAYOUT,
        task="detection",
        convert=birdvox(BIRDVOX_LAYOUT),
        note="annotations are points in time; the birdvox reader gives them a short span",
    )
)
