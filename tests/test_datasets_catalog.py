"""The catalog: Parquet tables + DuckDB views, idempotent imports, label map, duplicates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.annotations import make_events, write_annotations
from biomae.datasets.catalog import RECORDING_COLUMNS, Catalog, file_checksum
from biomae.datasets.local import import_paths


def tone(path: Path, duration_s: float = 2.0, sample_rate: int = 8000, hz: float = 440) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(duration_s * sample_rate)) / sample_rate
    sf.write(path, 0.1 * np.sin(2 * np.pi * hz * t), sample_rate)
    return path


def soundscapes(root: Path, n_files: int = 2) -> Path:
    """A dataset in the Zenodo annotated-soundscape layout (2 events per file)."""
    rows = []
    for i in range(n_files):
        tone(root / "soundscape_data" / f"f{i}.flac", hz=300 + 100 * i)
        for start in (0.2, 1.0):
            rows.append(
                (f"f{i}.flac", start, start + 0.4, 500.0, 3000.0, "norcar" if i else "amerob")
            )
    columns = ["Filename", "Start Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
               "Species eBird Code"]  # fmt: skip
    pd.DataFrame(rows, columns=columns).to_csv(root / "annotations.csv", index=False)
    return root


def test_import_writes_tables_and_is_idempotent(tmp_path):
    data = soundscapes(tmp_path / "nes", n_files=3)
    catalog = Catalog(tmp_path / "cat")
    first = catalog.import_dataset("northeast_us", data)
    recordings, events = catalog.recordings(), catalog.events()
    assert (first.n_recordings, first.n_events) == (3, 6)
    assert list(recordings.columns) == list(RECORDING_COLUMNS)
    assert recordings["recording_id"].is_unique
    assert set(events["recording_id"]) <= set(recordings["recording_id"])
    assert (recordings["duration_s"] == 2.0).all() and (recordings["n_samples"] == 16000).all()
    assert json.loads(recordings["regions"].iloc[0]) == [[0.0, 2.0]]
    assert (recordings["license"] == "CC-BY-4.0").all()
    again = catalog.import_dataset("northeast_us", data)
    assert again.replaced_recordings == 3
    pd.testing.assert_frame_equal(catalog.recordings(), recordings)
    pd.testing.assert_frame_equal(catalog.events(), events)
    assert not list((tmp_path / "cat").glob("*.part"))  # atomic writes leave nothing behind


def test_reimport_replaces_only_that_dataset(tmp_path):
    catalog = Catalog(tmp_path / "cat")
    catalog.import_dataset("northeast_us", soundscapes(tmp_path / "a", n_files=2))
    catalog.import_dataset("western_us", soundscapes(tmp_path / "b", n_files=3))
    shrunk = soundscapes(tmp_path / "a2", n_files=1)
    catalog.import_dataset("northeast_us", shrunk)
    counts = catalog.query(
        "SELECT r.dataset, count(DISTINCT r.recording_id) AS n_rec, count(*) AS n_ev "
        "FROM recordings r JOIN events e USING (recording_id) GROUP BY 1 ORDER BY 1"
    )
    assert counts.to_dict("list") == {
        "dataset": ["northeast_us", "western_us"],
        "n_rec": [1, 3],
        "n_ev": [2, 6],
    }


def test_duplicated_audio_is_kept_and_flagged(tmp_path):
    data = soundscapes(tmp_path / "nes", n_files=2)
    shutil.copy(data / "soundscape_data" / "f0.flac", data / "soundscape_data" / "copy.flac")
    catalog = Catalog(tmp_path / "cat")
    summary = catalog.import_dataset("northeast_us", data)
    recordings = catalog.recordings().set_index("path")
    pair = recordings.loc[[str(data / "soundscape_data" / n) for n in ("copy.flac", "f0.flac")]]
    flagged = pair[pair["duplicate_of"] != ""]
    assert summary.n_duplicates == 1 and len(flagged) == 1
    assert flagged["duplicate_of"].iloc[0] in set(pair["recording_id"]) - set(
        flagged["recording_id"]
    )
    assert recordings.loc[str(data / "soundscape_data" / "copy.flac"), "annotation"] == "none"


def test_same_audio_in_another_dataset_is_flagged(tmp_path):
    catalog = Catalog(tmp_path / "cat")
    catalog.import_dataset("northeast_us", soundscapes(tmp_path / "a", n_files=2))
    summary = catalog.import_dataset("western_us", soundscapes(tmp_path / "b", n_files=2))
    recordings = catalog.recordings()
    west = recordings[recordings["dataset"] == "western_us"]
    east_ids = set(recordings.loc[recordings["dataset"] == "northeast_us", "recording_id"])
    assert summary.n_duplicates == 2
    assert set(west["duplicate_of"]) == east_ids  # identical files, flagged across datasets


def test_checksum_reads_head_and_tail_only(tmp_path):
    big = tmp_path / "big.bin"
    payload = np.random.default_rng(0).bytes(5 << 20)
    big.write_bytes(payload)
    same_ends = tmp_path / "same_ends.bin"
    middle_changed = bytearray(payload)
    middle_changed[len(payload) // 2] ^= 0xFF
    same_ends.write_bytes(bytes(middle_changed))
    tail_changed = bytearray(payload)
    tail_changed[-1] ^= 0xFF
    (tmp_path / "tail.bin").write_bytes(bytes(tail_changed))
    assert file_checksum(big) == file_checksum(same_ends)  # documented: the middle is not read
    assert file_checksum(big) != file_checksum(tmp_path / "tail.bin")


def test_label_map_keeps_hand_edits(tmp_path):
    data = soundscapes(tmp_path / "nes")
    catalog = Catalog(tmp_path / "cat")
    catalog.import_dataset("northeast_us", data)
    labels = catalog.label_map()
    assert set(labels["label"]) == {"amerob", "norcar"} and (labels["n_events"] == 2).all()
    labels.loc[labels["label"] == "norcar", "taxon"] = "Cardinalis cardinalis"
    labels.to_csv(catalog.label_map_path, index=False)
    catalog.import_dataset("northeast_us", data)
    joined = catalog.query(
        "SELECT e.label, l.taxon FROM events e JOIN label_map l "
        "ON e.dataset = l.dataset AND e.source = l.source AND e.label = l.label "
        "WHERE e.label = 'norcar'"
    )
    assert len(joined) == 2 and set(joined["taxon"]) == {"Cardinalis cardinalis"}


def test_add_matches_annotations_by_stem(tmp_path):
    folder = tmp_path / "field"
    for name in ("a", "b", "c"):
        tone(folder / f"{name}.wav")
    events = make_events({"start_s": [0.1, 0.5], "end_s": [0.3, 0.9], "label": ["x", "y"]})
    write_annotations(events, folder / "a.Table.1.selections.txt", "raven")
    write_annotations(events.iloc[:1], folder / "b.selections.txt", "raven")
    catalog = Catalog(tmp_path / "cat")
    summary = import_paths(catalog, [folder], "raven", dataset="mine")
    recordings = catalog.recordings().set_index("path")
    status = {Path(p).stem: s for p, s in recordings["annotation"].items()}
    assert status == {"a": "full", "b": "full", "c": "none"}
    assert summary.n_events == 3
    import_paths(catalog, [folder / "c.wav"], "raven", dataset="mine")  # re-adding replaces rows
    assert len(catalog.recordings()) == 3 and len(catalog.events()) == 3


def test_boxes_above_nyquist_end_at_nyquist_with_a_note(tmp_path):
    data = soundscapes(tmp_path / "nes", n_files=1)
    table = pd.read_csv(data / "annotations.csv")
    table.loc[0, "High Freq (Hz)"] = 6000.0  # above 4 kHz Nyquist of the 8 kHz file
    table.to_csv(data / "annotations.csv", index=False)
    catalog = Catalog(tmp_path / "cat")
    with pytest.warns(UserWarning, match="1 event"):
        catalog.import_dataset("northeast_us", data)
    events = catalog.events().sort_values("start_s")
    assert events["high_hz"].iloc[0] == 4000.0 and "6000" in events["note"].iloc[0]
    assert events["note"].iloc[1] == ""


def test_event_after_the_end_of_its_recording_fails_naming_it(tmp_path):
    data = soundscapes(tmp_path / "nes", n_files=1)
    table = pd.read_csv(data / "annotations.csv")
    table.loc[1, "End Time (s)"] = 9.0
    table.to_csv(data / "annotations.csv", index=False)
    with pytest.raises(ValueError, match=r"f0\.flac.*after the recording ends"):
        Catalog(tmp_path / "cat").import_dataset("northeast_us", data)
    assert not (tmp_path / "cat" / "recordings.parquet").exists()


def test_stats_and_empty_catalog(tmp_path):
    catalog = Catalog(tmp_path / "cat")
    with pytest.raises(FileNotFoundError, match="empty"):
        catalog.query("SELECT 1")
    assert len(catalog.recordings()) == 0 and len(catalog.events()) == 0
    catalog.import_dataset("northeast_us", soundscapes(tmp_path / "nes", n_files=2))
    stats = catalog.stats()
    assert stats["n_recordings"].sum() == 2 and stats["n_events"].sum() == 4
    assert stats["hours"].sum() == pytest.approx(4.0 / 3600)
    assert set(stats["sample_rates"]) == {"8000"}
