"""Datasets annotated by one table (or by folder names): detection tables, clip labels, unlabeled.

See :mod:`biomae.datasets.adapters` for the conventions (metadata as published, "see URL" where a
detail could not be checked; ``layout`` is what ``convert`` expects).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from biomae.datasets.layouts import (
    clip_folders,
    clip_table,
    one_table,
    paired_files,
    unlabeled,
)
from biomae.datasets.registry import DatasetAdapter, LayoutError, register, register_layout

# ---- detection from one table ----------------------------------------------------------------

RFCX_LAYOUT = """\
ROOT/
  train_tp.csv     recording_id, species_id, songtype_id, t_min, f_min, t_max, f_max
  train/RECORDING_ID.flac"""
register(
    DatasetAdapter(
        name="rfcx",
        title="Rainforest Connection Species Audio Detection (Kaggle 2021)",
        citation="LeBien J., Zhong M., et al. (2020), A pipeline for identification of bird and "
        "frog species in tropical soundscape recordings using a convolutional neural network, "
        "Ecological Informatics 59: 101113; Kaggle competition rfcx-species-audio-detection",
        license="Kaggle competition rules (non-commercial research use); see URL",
        taxa="birds and frogs (24 species), Puerto Rico",
        url="https://www.kaggle.com/c/rfcx-species-audio-detection",
        annotation_format="rfcx",
        layout=RFCX_LAYOUT,
        task="detection",
        convert=one_table(
            "train_tp.csv",
            RFCX_LAYOUT,
            audio_dir="train",
            file_column="recording_id",
            file_suffix=".flac",
            start_column="t_min",
            end_column="t_max",
            low_column="f_min",
            high_column="f_max",
            label_column="species_id",
            annotation="partial",
        ),
        note="only true positives are imported (train_tp.csv); recordings are partially annotated",
    )
)


def _fruit_bat_files(root: Path) -> dict[str, str]:
    path = root / "FileInfo.csv"
    if not path.is_file():
        raise LayoutError(f"missing {path} (maps FileID to File name)")
    info = pd.read_csv(path, dtype=str)
    if not {"FileID", "File name"} <= set(info.columns):
        raise LayoutError(f"{path}: needs columns FileID and 'File name', has {list(info.columns)}")
    return dict(zip(info["FileID"].str.strip(), info["File name"].str.strip(), strict=True))


BATS_LAYOUT = """\
ROOT/
  Annotations.csv    FileID, Emitter, Addressee, Context, Start sample, End sample
  FileInfo.csv       FileID, File name, ...
  audio/FILE_NAME    the recordings named in FileInfo.csv"""
register(
    DatasetAdapter(
        name="fruit_bats",
        title="An annotated dataset of Egyptian fruit bat vocalizations across varying contexts "
        "and during vocal ontogeny",
        citation="Prat Y., Azoulay L., Dor R., Yovel Y. (2017), Scientific Data 4: 170143",
        license="CC-BY-4.0 (see URL)",
        taxa="Rousettus aegyptiacus (Egyptian fruit bat)",
        url="https://doi.org/10.6084/m9.figshare.c.3666502",
        annotation_format="csv (samples)",
        layout=BATS_LAYOUT,
        task="detection",
        convert=one_table(
            "Annotations.csv",
            BATS_LAYOUT,
            audio_dir="audio",
            file_column="FileID",
            file_map=_fruit_bat_files,
            start_column="Start sample",
            end_column="End sample",
            label_column="Context",
            individual_column="Emitter",
            time_unit="samples",
            taxon="Rousettus aegyptiacus",
        ),
        note="label = behavioural context, individual = emitter ID",
    )
)

ORCA_LAYOUT = """\
ROOT/
  annotations.tsv    wav_filename, start_time_s, duration_s, ...
  wav/WAV_FILENAME"""
register(
    DatasetAdapter(
        name="orca_sounds",
        title="Orcasound annotated call datasets (Podcast rounds)",
        citation="Orcasound (2020-), orcadata; see URL",
        license="CC-BY-NC-SA-4.0 (see URL)",
        taxa="Orcinus orca (southern resident killer whales)",
        url="https://github.com/orcasound/orcadata/wiki",
        annotation_format="tsv (start + duration)",
        layout=ORCA_LAYOUT,
        task="detection",
        convert=one_table(
            "annotations.tsv",
            ORCA_LAYOUT,
            audio_dir="wav",
            file_column="wav_filename",
            start_column="start_time_s",
            duration_column="duration_s",
            sep="\t",
            taxon="Orcinus orca",
        ),
        note="calls are labelled without call type (class-agnostic detection)",
    )
)

BIRDEEP_LAYOUT = """\
ROOT/
  annotations.csv   path, start_time, end_time, low_frequency, high_frequency, specie
  audio/PATH        recordings named in the path column"""
register(
    DatasetAdapter(
        name="birdeep",
        title="BIRDeep audio annotations (Doñana National Park)",
        citation="Márquez-Rodríguez A., et al. (2025), A bird song detector for improving bird "
        "identification through deep learning: a case study from Doñana; see URL",
        license="see URL",
        taxa="birds, Doñana, Spain",
        url="https://huggingface.co/datasets/GrunCrow/BIRDeep_AudioAnnotations",
        annotation_format="csv",
        layout=BIRDEEP_LAYOUT,
        task="detection",
        convert=one_table(
            "annotations.csv",
            BIRDEEP_LAYOUT,
            audio_dir="audio",
            file_column="path",
            start_column="start_time",
            end_column="end_time",
            low_column="low_frequency",
            high_column="high_frequency",
            label_column="specie",
        ),
        note="column names assumed from the published CSV; check against your download",
    )
)

ONSET_CSV_LAYOUT = """\
ROOT/
  **/NAME.wav      recordings
  **/NAME.csv      onset/offset table of NAME (columns start_s, end_s, label, ...)"""


def _csv_dataset(name: str, title: str, citation: str, license: str, taxa: str, url: str,
                 note: str, taxon: str = "") -> None:  # fmt: skip
    register_layout(
        name, title, citation, license, taxa, url, note,
        annotation_format="csv", layout=ONSET_CSV_LAYOUT, task="detection",
        convert=paired_files("csv", (".csv",), ONSET_CSV_LAYOUT, taxon=taxon),
    )  # fmt: skip


_csv_dataset(
    "hainan_gibbons",
    "Hainan gibbon calls for passive acoustic monitoring",
    "Dufourq E., Durbach I., et al. (2021), Automated detection of Hainan gibbon calls for "
    "passive acoustic monitoring, Remote Sensing in Ecology and Conservation 7(3)",
    "see URL",
    "Nomascus hainanus (Hainan gibbon)",
    "https://doi.org/10.1002/rse2.201",
    "convert the published label files to one CSV per recording (start_s, end_s, label)",
    taxon="Nomascus hainanus",
)
_csv_dataset(
    "anuraset",
    "AnuraSet: a dataset for benchmarking Neotropical anuran calls identification",
    "Cañas J. S., Toro-Gómez M. P., et al. (2023), Scientific Data 10: 771",
    "CC-BY-4.0 (see URL)",
    "anurans (42 species), Brazil",
    "https://doi.org/10.5281/zenodo.8342596",
    "the strong labels per raw recording as one CSV each (start_s, end_s, label)",
)
_csv_dataset(
    "rodent_usv",
    "USVSEG ultrasonic vocalization recordings",
    "Tachibana R. O., Kanno K., Okabe S., Kobayasi K. I., Okanoya K. (2020), USVSEG: a robust "
    "method for segmentation of ultrasonic vocalizations in rodents, PLoS ONE 15(2): e0228907",
    "see URL",
    "Mus musculus, Rattus norvegicus and other rodents (ultrasonic)",
    "https://doi.org/10.1371/journal.pone.0228907",
    "one onset/offset CSV per recording (start_s, end_s)",
)
_csv_dataset(
    "infant_marmosets",
    "InfantMarmosetsVox: infant marmoset vocalizations with call type and caller",
    "Zhang Y.-J., Huang J.-F., Gong N., Ling Z.-H., Hu Y. (2018), Automatic detection and "
    "classification of marmoset vocalizations using deep and recurrent neural networks, "
    "J. Acoust. Soc. Am. 144(1): 478",
    "see URL",
    "Callithrix jacchus (common marmoset), infants",
    "see URL (Zhang et al. 2018; redistributed by Idiap as InfantMarmosetsVox)",
    "one CSV per recording (start_s, end_s, label = call type, individual = caller)",
    taxon="Callithrix jacchus",
)

# ---- clip labels -----------------------------------------------------------------------------

ESC50_LAYOUT = """\
ROOT/
  meta/esc50.csv     filename, fold, target, category, esc10, src_file, take
  audio/*.wav        2,000 five-second clips"""
register(
    DatasetAdapter(
        name="esc50",
        title="ESC-50: Dataset for Environmental Sound Classification",
        citation="Piczak K. J. (2015), ESC: Dataset for Environmental Sound Classification, "
        "Proc. ACM Multimedia",
        license="CC-BY-NC-3.0",
        taxa="environmental sounds (50 classes, incl. animals)",
        url="https://github.com/karolpiczak/ESC-50",
        annotation_format="cliplabels",
        layout=ESC50_LAYOUT,
        task="classification",
        convert=clip_table(
            "meta/esc50.csv",
            ESC50_LAYOUT,
            audio_dir="audio",
            file_column="filename",
            label_column="category",
            split_column="fold",
        ),
        note="split = the official fold (1-5); cross-validate over folds",
    )
)

SSW60_LAYOUT = """\
ROOT/
  audio_ml.csv      asset_id, label, ...
  audio_ml/ASSET_ID.wav"""
register(
    DatasetAdapter(
        name="ssw60",
        title="SSW60: Sapsucker Woods 60 audiovisual dataset (audio part)",
        citation="Van Horn G., Qian R., et al. (2022), Exploring Fine-Grained Audiovisual "
        "Categorization with the SSW60 Dataset, ECCV",
        license="see URL",
        taxa="birds (60 species), Sapsucker Woods",
        url="https://github.com/visipedia/ssw60",
        annotation_format="cliplabels",
        layout=SSW60_LAYOUT,
        task="classification",
        convert=clip_table(
            "audio_ml.csv",
            SSW60_LAYOUT,
            audio_dir="audio_ml",
            file_column="asset_id",
            label_column="label",
            file_suffix=".wav",
        ),
    )
)

FOLDER_LAYOUT = """\
ROOT/
  LABEL/*.wav       one folder per class (species, call type or individual)"""


def _folder_dataset(name: str, title: str, citation: str, license: str, taxa: str, url: str,
                    note: str) -> None:  # fmt: skip
    register_layout(
        name, title, citation, license, taxa, url, note,
        annotation_format="cliplabels (folders)", layout=FOLDER_LAYOUT, task="classification",
        convert=clip_folders(FOLDER_LAYOUT),
    )  # fmt: skip


_folder_dataset(
    "watkins",
    "Watkins Marine Mammal Sound Database",
    "Sayigh L., Daher M. A., et al. (2016), The Watkins Marine Mammal Sound Database, "
    "Proc. Meetings on Acoustics 27: 040013",
    "free for personal and academic use; see URL",
    "marine mammals (60+ species)",
    "https://cis.whoi.edu/science/B/whalesounds/",
    "label = species folder (as in the 'best of' cuts)",
)
_folder_dataset(
    "giant_otters",
    "Vocal repertoire of adult and neonate giant otters",
    "Mumm C. A. S., Knörnschild M. (2014), The vocal repertoire of adult and neonate giant "
    "otters (Pteronura brasiliensis), PLoS ONE 9(11): e112562",
    "see URL",
    "Pteronura brasiliensis (giant otter)",
    "https://doi.org/10.1371/journal.pone.0112562",
    "label = call-type folder",
)
_folder_dataset(
    "macaques",
    "Macaque coo calls for caller identity",
    "Fukushima M., Doyle A. M., Mullarkey M. P., Mishkin M., Averbeck B. B. (2015), Distributed "
    "acoustic cues for caller identity in macaque vocalization, Royal Society Open Science 2",
    "see URL",
    "Macaca mulatta (rhesus macaque)",
    "https://doi.org/10.1098/rsos.150432",
    "label = caller folder (individual identification)",
)
_folder_dataset(
    "rooks",
    "Rookognise: rook vocalizations",
    "see URL (not verified here)",
    "see URL",
    "Corvus frugilegus (rook)",
    "see URL",
    "source not verified; label = folder (call type or individual)",
)
_folder_dataset(
    "pig_sounds",
    "SoundWel pig vocalizations by context and valence",
    "Briefer E. F., Sypherd C. C.-R., et al. (2022), Classification of pig calls produced from "
    "birth to slaughter according to their emotional valence and context of production, "
    "Scientific Reports 12: 3409",
    "see URL",
    "Sus scrofa domesticus (domestic pig)",
    "https://doi.org/10.1038/s41598-022-07174-8",
    "label = folder (context or valence)",
)

# ---- unlabeled audio -------------------------------------------------------------------------

AUDIOSET_LAYOUT = """\
ROOT/
  **/*.wav|flac|...   clips you obtained yourself (YouTube IDs from the segment CSVs)"""
register(
    DatasetAdapter(
        name="audioset",
        title="AudioSet (audio only, for self-supervised pretraining)",
        citation="Gemmeke J. F., Ellis D. P. W., et al. (2017), Audio Set: An ontology and "
        "human-labeled dataset for audio events, ICASSP",
        license="labels CC-BY-4.0; audio belongs to its YouTube uploaders",
        taxa="general audio (animal sounds among 527 classes)",
        url="https://research.google.com/audioset/",
        annotation_format="none",
        layout=AUDIOSET_LAYOUT,
        task="unlabeled",
        convert=unlabeled(AUDIOSET_LAYOUT),
        note="imported unlabeled; clip tags are not used",
    )
)
