"""Every dataset adapter converts a local copy laid out like the real dataset (built in tmp_path,
from real annotation files of ../shared/data where the format matches) and fails clearly on a
wrong layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.annotations import make_events, write_annotations
from biomae.datasets.adapters_sources import SOURCES
from biomae.datasets.registry import LayoutError, get_adapter, list_adapters

RATE = 8000
CROWSETTA = Path("formats/crowsetta/tests/data_for_tests")


def tone(path: Path, duration_s: float = 2.0, sample_rate: int = RATE) -> Path:
    """A tiny audio file (a quiet tone; FLAC/WAV by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(duration_s * sample_rate)) / sample_rate
    sf.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), sample_rate)
    return path


def silence(path: Path, duration_s: float, sample_rate: int) -> Path:
    """Long silent FLAC (compresses to almost nothing) for real tables that span minutes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(round(duration_s * sample_rate), dtype=np.int16), sample_rate)
    return path


def events(n: int = 2, **extra) -> pd.DataFrame:
    return make_events(
        {"start_s": 0.2 + 0.5 * np.arange(n), "end_s": 0.4 + 0.5 * np.arange(n), "label": "a"},
        **extra,
    )


# ---- fixture builders: (root, shared) -> minimum expected (recordings, events) ---------------


def _zenodo(root: Path, shared: Path) -> tuple[int, int]:
    tone(root / "soundscape_data" / "SSW_001.flac")
    tone(root / "soundscape_data" / "SSW_002.flac")
    pd.DataFrame(
        {
            "Filename": ["SSW_001.flac", "SSW_001.flac", "SSW_002.flac"],
            "Start Time (s)": [0.1, 0.5, 1.0],
            "End Time (s)": [0.3, 0.9, 1.5],
            "Low Freq (Hz)": [500, 1000, 200],
            "High Freq (Hz)": [2000, 3000, 3900],
            "Species eBird Code": ["norcar", "amerob", "blujay"],
        }
    ).to_csv(root / "annotations.csv", index=False)
    return 2, 3


def _ena(root: Path, shared: Path) -> tuple[int, int]:
    tables = shared / CROWSETTA / "raven/chronister-at-al-2021/Annotation_Files/Recording_1"
    n_events = 0
    for name in ("Recording_1_Segment_02", "Recording_1_Segment_15"):
        table = tables / f"{name}.Table.1.selections.txt"
        target = root / "Annotation_Files" / "Recording_1" / table.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(table, target)
        rows = pd.read_csv(table, sep="\t")
        n_events += rows["Selection"].nunique()
        silence(root / "Recording_1" / f"{name}.flac", rows["End Time (s)"].max() + 1, 32000)
    return 2, n_events


def _raven(root: Path, shared: Path) -> tuple[int, int]:
    for name in ("a", "b"):
        tone(root / "audio" / f"{name}.wav")
        write_annotations(
            events(recording=name), root / "tables" / f"{name}.Table.1.selections.txt", "raven"
        )
    tone(root / "audio" / "unlabeled.wav")
    return 3, 4


def _bfsongrepo(root: Path, shared: Path) -> tuple[int, int]:
    day = shared / "audio/hvc/tests/data_for_tests/cbins/gy6or6/032312"
    for stem in ("gy6or6_baseline_230312_0808.138", "gy6or6_baseline_230312_0809.141"):
        for suffix in (".cbin.flac", ".cbin.not.mat", ".rec"):
            target = root / "gy6or6" / "032312" / (stem + suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(day / (stem + suffix), target)
    return 2, 10


def _koumura(root: Path, shared: Path) -> tuple[int, int]:
    source = shared / "audio/crowsetta/tests/data_for_tests/birdsongrec/Bird0"
    (root / "Bird0").mkdir(parents=True)
    shutil.copy(source / "Annotation.xml", root / "Bird0" / "Annotation.xml")
    (root / "Bird0" / "Wave").symlink_to(source / "Wave")  # read-only audio, not copied
    return 135, 7000


def _canaries(root: Path, shared: Path) -> tuple[int, int]:
    folder = shared / CROWSETTA / "aud-seq/giraudon-et-al-2022/audacity-annotations"
    n_events = 0
    for table in sorted(folder.glob("*.audacity.txt"))[:2]:
        shutil.copy(table, root / table.name)
        rows = pd.read_csv(table, sep="\t", header=None)
        n_events += len(rows)
        silence(
            root / "audio" / table.name.replace(".audacity.txt", ".wav"), rows[1].max() + 1, 32000
        )
    return 2, n_events


def _whisperseg(root: Path, shared: Path) -> tuple[int, int]:
    folder = shared / "audio/whisperseg/data/example_subset/Zebra_finch/test_adults"
    n_events = 0
    for table in sorted(folder.glob("*.json"))[:2]:
        for path in (table, table.with_suffix(".flac")):
            shutil.copy(path, root / path.name)
        n_events += len(json.loads(table.read_text())["onset"])
    return 2, n_events


def _timit(root: Path, shared: Path) -> tuple[int, int]:
    speaker = root / "TRAIN" / "DR1" / "FCJF0"
    speaker.mkdir(parents=True)
    phn = shared / "formats/crowsetta/src/crowsetta/examples/sa1.phn"
    shutil.copy(phn, speaker / "SA1.PHN")
    last_sample = int(phn.read_text().split()[-2])
    silence(speaker / "SA1.WAV", last_sample / 16000 + 0.1, 16000)
    return 1, 10


def _dcase(root: Path, shared: Path) -> tuple[int, int]:
    folder = root / "Development_Set" / "Training_Set" / "BV"
    tone(folder / "a.wav")
    (folder / "a.csv").write_text(
        "Audiofilename,Starttime,Endtime,Q\na.wav,0.1,0.3,POS\na.wav,0.9,1.2,UNK\n"
    )
    return 1, 1


def _birdvox(root: Path, shared: Path) -> tuple[int, int]:
    tone(root / "BirdVox-full-night_wav-audio_unit01.wav")
    (root / "BirdVox-full-night_csv-annotations_unit01.csv").write_text(
        "Center Freq (Hz),Time (s)\n3000.0,0.5\n2500.0,1.2\n"
    )
    return 1, 2


def _csv(root: Path, shared: Path) -> tuple[int, int]:
    for name in ("rec1", "rec2"):
        tone(root / "site" / f"{name}.wav")
        (root / "site" / f"{name}.csv").write_text(
            "start_s,end_s,label\n0.1,0.5,call\n1.0,1.4,call\n"
        )
    return 2, 4


def _rfcx(root: Path, shared: Path) -> tuple[int, int]:
    tone(root / "train" / "00204008d.flac", sample_rate=48000)
    (root / "train_tp.csv").write_text(
        "recording_id,species_id,songtype_id,t_min,f_min,t_max,f_max\n"
        "00204008d,21,1,0.2,3000,0.9,6000\n"
    )
    return 1, 1


def _fruit_bats(root: Path, shared: Path) -> tuple[int, int]:
    tone(root / "audio" / "120601000005.WAV", sample_rate=RATE)
    (root / "FileInfo.csv").write_text("FileID,File name\n1,120601000005.WAV\n")
    (root / "Annotations.csv").write_text(
        "FileID,Emitter,Addressee,Context,Start sample,End sample\n1,216,0,11,800,4000\n"
    )
    return 1, 1


def _orca(root: Path, shared: Path) -> tuple[int, int]:
    tone(root / "wav" / "60012.wav")
    (root / "annotations.tsv").write_text(
        "wav_filename\tstart_time_s\tduration_s\n60012.wav\t0.5\t0.8\n"
    )
    return 1, 1


def _birdeep(root: Path, shared: Path) -> tuple[int, int]:
    tone(root / "audio" / "AM1" / "x.wav")
    pd.DataFrame(
        {
            "path": ["AM1/x.wav"],
            "start_time": [0.1],
            "end_time": [0.6],
            "low_frequency": [100],
            "high_frequency": [3000],
            "specie": ["Turdus merula"],
        }
    ).to_csv(root / "annotations.csv", index=False)
    return 1, 1


def _esc50(root: Path, shared: Path) -> tuple[int, int]:
    tone(root / "audio" / "1-100032-A-0.wav")
    tone(root / "audio" / "1-100038-A-14.wav")
    (root / "meta").mkdir()
    (root / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category,esc10,src_file,take\n"
        "1-100032-A-0.wav,1,0,dog,True,100032,A\n1-100038-A-14.wav,1,14,chirping_birds,False,100038,A\n"
    )
    return 2, 2


def _ssw60(root: Path, shared: Path) -> tuple[int, int]:
    tone(root / "audio_ml" / "123.wav")
    (root / "audio_ml.csv").write_text("asset_id,label\n123,7\n")
    return 1, 1


def _folders(root: Path, shared: Path) -> tuple[int, int]:
    for label in ("cow", "dog"):
        tone(root / label / f"{label}1.wav")
    return 2, 2


def _unlabeled(root: Path, shared: Path) -> tuple[int, int]:
    tone(root / "a" / "x.flac")
    tone(root / "y.wav")
    return 2, 0


def _shared(root: Path, shared: Path) -> tuple[int, int]:
    tone(root / "audio" / "s" / "a.flac")
    tone(root / "audio" / "s" / "clip.flac")
    (root / "index").mkdir()
    (root / "index" / "files.csv").write_text(
        "source,file,duration_s,sr,channels,annotation,task,taxon,regions,license,note,duplicate_of\n"
        's,audio/s/a.flac,2.0,8000,1,full,detection,Aves,"[[0.0, 2.0]]",MIT,,\n'
    )
    (root / "index" / "events.csv").write_text(
        "source,file,onset_s,offset_s,low_hz,high_hz,label,taxon,note\n"
        "s,audio/s/a.flac,0.1,0.2,,,x,Aves,\n"
    )
    (root / "index" / "clips.csv").write_text(
        "source,file,duration_s,sr,label,taxon,note,license\ns,audio/s/clip.flac,2.0,8000,y,Aves,,MIT\n"
    )
    return 2, 2


BUILDERS = {
    **dict.fromkeys(
        ["northeast_us", "western_us", "sierra_nevada", "hawaii_birds", "southwest_amazon",
         "coffee_farms"], _zenodo),
    **dict.fromkeys(["dawn_chorus", "hiceas", "sperm_whales", "multimodal_birds"], _raven),
    **dict.fromkeys(["hainan_gibbons", "anuraset", "rodent_usv", "infant_marmosets"], _csv),
    **dict.fromkeys(["watkins", "giant_otters", "macaques", "rooks",
                     "pig_sounds"], _folders),
    "ena_birds": _ena, "bfsongrepo": _bfsongrepo, "koumura": _koumura, "canaries": _canaries,
    "whisperseg": _whisperseg, "timit": _timit, "dcase_fewshot": _dcase,
    "birdvox_full_night": _birdvox, "rfcx": _rfcx, "fruit_bats": _fruit_bats,
    "orca_sounds": _orca, "birdeep": _birdeep, "esc50": _esc50, "ssw60": _ssw60,
    "audioset": _unlabeled, "shared": _shared,
}  # fmt: skip


def test_every_adapter_has_a_fixture_and_honest_metadata():
    names = {a.name for a in list_adapters()}
    assert names == set(BUILDERS) | {s.dataset for s in SOURCES}  # tests/test_datasets_sources.py
    for adapter in list_adapters():
        for field in ("title", "citation", "license", "taxa", "url", "layout"):
            assert getattr(adapter, field).strip(), f"{adapter.name}: empty {field}"
        assert "ROOT/" in adapter.layout


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_adapter_converts_its_layout(name, tmp_path, shared_data):
    root = tmp_path / name
    root.mkdir()
    n_recordings, min_events = BUILDERS[name](root, shared_data)
    adapter = get_adapter(name)
    recordings, events = adapter.load(root)
    assert len(recordings) == n_recordings
    assert len(events) >= min_events
    assert all(Path(p).is_file() and Path(p).is_absolute() for p in recordings["path"])
    assert set(events["recording"]) <= set(recordings["path"])
    if adapter.task == "unlabeled":
        assert (recordings["annotation"] == "none").all() and len(events) == 0
    else:
        assert len(events) > 0
        assert (events["end_s"] >= events["start_s"]).all()


@pytest.mark.parametrize("name", ["ena_birds", "northeast_us", "esc50", "koumura", "fruit_bats"])
def test_wrong_layout_names_what_is_missing(name, tmp_path, shared_data):
    root = tmp_path / name
    root.mkdir()
    BUILDERS[name](root, shared_data)
    if name == "koumura":
        (root / "Bird0" / "Wave").unlink()  # the symlinked Wave folder
    else:
        next(p for p in sorted(root.rglob("*")) if p.suffix.lower() in (".wav", ".flac")).unlink()
    with pytest.raises(LayoutError, match="missing|no audio"):
        get_adapter(name).load(root)


def test_bfsongrepo_individual_and_taxon(tmp_path, shared_data):
    _bfsongrepo(tmp_path, shared_data)
    recordings, events = get_adapter("bfsongrepo").load(tmp_path)
    assert set(recordings["individual"]) == {"gy6or6"}
    assert (events["taxon"] == "Lonchura striata domestica").all()


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(KeyError, match="known: .*ena_birds"):
        get_adapter("no_such_dataset")


def test_missing_root_is_a_layout_error(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        get_adapter("esc50").load(tmp_path / "absent")


def test_stray_text_file_is_skipped_with_a_warning(tmp_path, shared_data):
    n_recordings, n_events = _canaries(tmp_path, shared_data)
    (tmp_path / "README.txt").write_text("song of one canary\n")
    with pytest.warns(UserWarning, match="README.txt"):
        recordings, found = get_adapter("canaries").load(tmp_path)
    assert len(recordings) == n_recordings and len(found) == n_events


def test_import_stops_at_a_malformed_row_unless_lenient(tmp_path):
    from biomae.annotations import EventTableError
    from biomae.datasets.catalog import Catalog

    n_recordings, n_events = _raven(tmp_path / "data", tmp_path)
    table = tmp_path / "data" / "tables" / "b.Table.1.selections.txt"
    lines = table.read_text().splitlines()
    cells = lines[2].split("\t")  # the second selection: its end before its start
    header = lines[0].split("\t")
    cells[header.index("End Time (s)")] = "0.01"
    table.write_text("\n".join([*lines[:2], "\t".join(cells), *lines[3:]]) + "\n")
    catalog = Catalog(tmp_path / "cat")
    with pytest.raises(EventTableError, match=rf"{table}:3: .*end_s"):
        catalog.import_dataset("hiceas", tmp_path / "data")
    with pytest.warns(UserWarning, match="skipped 1 malformed row"):
        summary = catalog.import_dataset("hiceas", tmp_path / "data", lenient=True)
    assert summary.n_recordings == n_recordings and summary.n_events == n_events - 1
    assert len(summary.skipped) == 1 and summary.skipped[0].startswith(f"{table}:3: ")
