"""The clonable public sources: each adapter reads a tiny copy laid out like the real one (built in
tmp_path), with roles and per-file licences; ``biomae data sources`` lists what is present and
says how to get the rest; the real copies import where BIOMAE_DATA_SOURCES points at them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.cli import main
from biomae.datasets.adapters_sources import SOURCES, find_source, sources_status
from biomae.datasets.catalog import Catalog
from biomae.datasets.registry import LayoutError, get_adapter

RATE = 8000
DATA_SOURCES = os.environ.get("BIOMAE_DATA_SOURCES", "")


def tone(path: Path, duration_s: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(duration_s * RATE)) / RATE
    sf.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), RATE)
    return path


def _insectset(root: Path) -> None:
    data = root / "data"
    tone(data / "Cicadidae/Kikihiamuta/Kikihiamuta_a.wav")
    tone(data / "Orthoptera/Grylluscampestris/Grylluscampestris_b.wav")
    tone(data / "Orthoptera/Grylluscampestris/Grylluscampestris_unlisted.wav")
    for family, name, species in (
        ("Cicadidae", "Kikihiamuta_a.wav", "Kikihiamuta"),
        ("Orthoptera", "Grylluscampestris_b.wav", "Grylluscampestris"),
    ):
        pd.DataFrame({"file_name": [name], "species": [species], "class_ID": [1],
                      "data_set": ["train"], "original_file_name": ["x.wav"]}
                     ).to_csv(data / f"{family}.csv", index=False)  # fmt: skip


def _synthesis(root: Path) -> None:
    base = root / "example_input_dataset"
    tone(base / "vocalisations/calqua/a_01.wav")
    tone(base / "vocalisations_xc/XC1 - Bunting.wav")
    tone(base / "vocalisations_xc/XC2 - Soundscape_01.wav")
    (base / "vocalisations_xc/tags.csv").write_text(
        "filename,attribution,species\n"
        'XC1 - Bunting.wav,"Mike N, XC1. Accessible at www.xeno-canto.org/1.",Emberiza cabanisi\n'
        "XC2 - Soundscape_01.wav,X,\n",
        encoding="utf-8-sig",
    )
    tone(base / "noise/room_01.wav")
    tone(base / "negative/rain_01.wav")


def _animal_sound(root: Path) -> None:
    tone(root / "Kedi-Part1/kedi_1.wav")
    tone(root / "Kedi-Part2/kedi_2.wav")
    tone(root / "Kurbaga/kurbaga_1.wav")


def _esp(root: Path) -> None:
    tone(root / "watkins/assets/Bearded_Seal.wav")
    tone(root / "environmental_sound_classification/assets/frog.wav")
    tone(root / "environmental_sound_classification/assets/chainsaw.wav")
    tone(root / "tropical_soundscape/assets/abc.flac")


def _microfaune(root: Path) -> None:
    (root).mkdir(parents=True, exist_ok=True)
    (root / "oiseaux.csv").write_text(
        "Nom vernaculaire;Nom pour fichier;Nom latin\nPie bavarde;pie_bavarde;Pica pica\n"
    )
    tone(root / "viz/audio/species_mp3/pie_bavarde.wav")


def _phoebe(root: Path) -> None:
    tone(root / "audio/data/processed/1.wav")
    meta = {"Sayornis nigricans": [{"file_name": "1.wav", "scientific_name": "Sayornis nigricans",
            "author": "P M", "license": "//creativecommons.org/licenses/by-sa/3.0/",
            "url": "//xeno-canto.org/1"}]}  # fmt: skip
    (root / "audio/data/app_data.json").write_text(json.dumps(meta))


def _chimps(root: Path) -> None:
    base = root / "test_data"
    tone(base / "processed_wav_files/vocalizations/0_a.wav")
    tone(base / "synthetic_intermediate/background/0_b.wav")
    (base / "processed_wav_files/chimpanzee.csv").write_text(",wav,type\n0,0_a.wav,Food grunts\n")


def _zero_ad(root: Path) -> None:
    tone(root / "audio/actor/fauna/animal/camel_order_10.wav")
    tone(root / "audio/ambient/dayscape/day_tropical_10.wav")
    tone(root / "audio/ambient/weather/rain_11.wav")
    tone(root / "audio/ambient/water/river_slow_21.wav")


def _scratch(root: Path) -> None:
    tone(root / "usr/share/scratch/Media/Sounds/Animal/Dog1.wav")


# name -> (builder, {path suffix: (role, label, licence contains)})
CASES = {
    "insectset32": (_insectset, {"Kikihiamuta_a.wav": ("calls", "Kikihiamuta", ""),
                                 "_unlisted.wav": ("calls", "Grylluscampestris", "")}),
    "bioacoustic_synthesis": (_synthesis, {
        "a_01.wav": ("calls", "calqua", "research use only"),
        "XC1 - Bunting.wav": ("calls", "Emberiza cabanisi", "xeno-canto.org/1"),
        "Soundscape_01.wav": ("background", "", ""),
        "room_01.wav": ("background", "", ""), "rain_01.wav": ("negative", "", "")}),
    "animal_sounds": (_animal_sound, {"kedi_2.wav": ("calls", "cat", ""),
                                      "kurbaga_1.wav": ("calls", "frog", "")}),
    "esp_library": (_esp, {"Bearded_Seal.wav": ("calls", "Bearded Seal", "Watkins"),
                           "frog.wav": ("calls", "frog", "CC-BY-NC-3.0"),
                           "chainsaw.wav": ("negative", "", "CC-BY-NC-3.0"),
                           "abc.flac": ("background", "", "competition")}),
    "microfaune": (_microfaune, {"pie_bavarde.wav": ("calls", "Pica pica", "")}),
    "phoebe": (_phoebe, {"1.wav": ("calls", "Sayornis nigricans", "by-sa/3.0")}),
    "chimpanzee_utrecht": (_chimps, {"0_a.wav": ("calls", "chimpanzee Food grunts", "Apache"),
                                     "0_b.wav": ("background", "", "Apache")}),
    "zero_ad": (_zero_ad, {"camel_order_10.wav": ("calls", "camel", "CC-BY-SA-3.0"),
                           "day_tropical_10.wav": ("background", "", ""),
                           "rain_11.wav": ("negative", "", ""),
                           "river_slow_21.wav": ("negative", "", "")}),
    "scratch_animals": (_scratch, {"Dog1.wav": ("calls", "Dog", "CC-BY-SA-3.0")}),
}  # fmt: skip


def test_every_source_has_a_case_and_a_way_to_get_it():
    assert {s.dataset for s in SOURCES} == set(CASES)
    for source in SOURCES:
        assert source.get and all(("git clone" in c) or ("apt-get" in c) or ("unzip" in c)
                                  for c in source.get)  # fmt: skip
        assert get_adapter(source.dataset).citation


@pytest.mark.parametrize("name", sorted(CASES))
def test_source_adapter_reads_its_layout_with_roles_and_licences(name, tmp_path):
    build, expected = CASES[name]
    root = tmp_path / name
    build(root)
    recordings, events = get_adapter(name).load(root)
    for suffix, (role, label, licence) in expected.items():
        row = recordings[recordings["path"].str.endswith(suffix)]
        assert len(row) == 1, suffix
        row = row.iloc[0]
        assert (row["role"], row["label"]) == (role, label), suffix
        assert licence in row["license"], suffix
        clip_events = events[events["recording"] == row["path"]]
        assert len(clip_events) == (1 if role == "calls" else 0)
        assert row["annotation"] == ("clip" if role == "calls" else "none")


def test_source_adapter_names_the_missing_folder(tmp_path):
    with pytest.raises(LayoutError, match="oiseaux.csv"):
        get_adapter("microfaune").load(tmp_path)


def test_sources_command_lists_present_imports_them_and_says_how_to_get_the_rest(tmp_path, capsys):
    root = tmp_path / "clones"
    _phoebe(root / "phoebe")  # as `git clone` names it
    _zero_ad(root / "0ad-data")
    catalog = tmp_path / "catalog"
    code = main(["data", "sources", "--root", str(root), "--import", "--catalog", str(catalog)])
    out = capsys.readouterr().out
    assert code == 1  # some are missing
    assert "present  phoebe" in out and "present  zero_ad" in out
    assert f"cd {root} && git clone https://github.com/microfaune/microfaune" in out
    assert f"cd {root} && apt-get download scratch" in out
    assert "2 of 9 sources present" in out
    recordings = Catalog(catalog).recordings()
    assert set(recordings["dataset"]) == {"phoebe", "zero_ad"}
    negatives = Catalog(catalog).query("SELECT path FROM recordings WHERE role = 'negative'")
    assert len(negatives) == 2
    licence = recordings.loc[recordings["dataset"] == "phoebe", "license"].iloc[0]
    assert "creativecommons.org/licenses/by-sa/3.0" in licence


def test_old_catalog_without_role_reads_with_an_empty_role(tmp_path):
    catalog = Catalog(tmp_path)
    _scratch(tmp_path / "scratch")
    catalog.import_dataset("scratch_animals", tmp_path / "scratch")
    table = pd.read_parquet(catalog.recordings_path).drop(columns=["role"])
    table.to_parquet(catalog.recordings_path, index=False)
    assert (catalog.recordings()["role"] == "").all()


@pytest.mark.skipif(not DATA_SOURCES, reason="set BIOMAE_DATA_SOURCES to a folder of real clones")
@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.dataset)
def test_real_copy_converts(source):
    folder = find_source(DATA_SOURCES, source)
    if folder is None:
        pytest.skip(f"{source.dataset} not under {DATA_SOURCES}: {source.get[0]}")
    recordings, events = get_adapter(source.dataset).load(folder)
    assert len(recordings) > 0 and (recordings["role"] != "").all()
    assert len(events) == (recordings["role"] == "calls").sum()
    assert not (events["label"] == "").any()
    status = {r["dataset"]: r["path"] for r in sources_status(DATA_SOURCES)}
    assert status[source.dataset] == folder
