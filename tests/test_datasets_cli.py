"""User stories of ``biomae data``: list, import, add, query, stats, and clear failures."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from biomae.annotations import make_events, write_annotations
from biomae.cli import main


def tone(path: Path, duration_s: float = 2.0, sample_rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.sin(np.arange(round(duration_s * sample_rate)) * 0.3), sample_rate)
    return path


def test_datasets_lists_every_adapter(capsys):
    assert main(["data", "datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("shared", "ena_birds", "bfsongrepo", "esc50", "audioset", "timit", "watkins"):
        assert f"\n{name} " in out
    assert "CC0-1.0" in out and "classification" in out


def test_import_query_stats_story(tmp_path, capsys):
    data = tmp_path / "esc"
    tone(data / "audio" / "1-1-A-0.wav")
    tone(data / "audio" / "1-2-A-1.wav")
    (data / "meta").mkdir()
    (data / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category\n1-1-A-0.wav,1,0,dog\n1-2-A-1.wav,2,1,rooster\n"
    )
    catalog = str(tmp_path / "cat")
    assert main(["data", "import", "esc50", str(data), "--catalog", catalog]) == 0
    assert "esc50: 2 recordings" in capsys.readouterr().out
    sql = "SELECT label, split FROM recordings ORDER BY label"
    assert main(["data", "query", sql, "--csv", "--catalog", catalog]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert table.to_dict("list") == {"label": ["dog", "rooster"], "split": [1, 2]}
    assert main(["data", "stats", "--catalog", catalog]) == 0
    assert "total: 2 recordings" in capsys.readouterr().out


def test_add_folder_with_raven_tables(tmp_path, capsys):
    folder = tmp_path / "field"
    tone(folder / "a.wav")
    tone(folder / "b.wav")
    events = make_events({"start_s": [0.1], "end_s": [0.4], "label": ["x"]})
    write_annotations(events, folder / "a.Table.1.selections.txt", "raven")
    catalog = str(tmp_path / "cat")
    code = main(["data", "add", str(folder), "--format", "raven", "--dataset", "mine",
                 "--catalog", catalog])  # fmt: skip
    assert code == 0 and "mine: 2 recordings" in capsys.readouterr().out
    main(["data", "query", "SELECT annotation, count(*) AS n FROM recordings GROUP BY 1 ORDER BY 1",
          "--csv", "--catalog", catalog])  # fmt: skip
    assert pd.read_csv(io.StringIO(capsys.readouterr().out)).to_dict("list") == {
        "annotation": ["full", "none"],
        "n": [1, 1],
    }


def test_failures_exit_2_with_a_message(tmp_path, capsys):
    catalog = str(tmp_path / "cat")
    assert main(["data", "import", "no_such", str(tmp_path), "--catalog", catalog]) == 2
    assert "unknown dataset 'no_such'" in capsys.readouterr().err
    assert main(["data", "import", "esc50", str(tmp_path), "--catalog", catalog]) == 2
    assert "meta/esc50.csv" in capsys.readouterr().err
    assert main(["data", "query", "SELECT 1", "--catalog", catalog]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["data", "stats", "--catalog", catalog]) == 2


def test_synth_options_load_only_when_used(capsys):
    import subprocess
    import sys

    code = (
        "import sys; from biomae.cli import build_parser; build_parser(); "
        "print('biomae.datasets.synth' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    try:
        main(["data", "synth", "--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert "--out" in capsys.readouterr().out


def test_add_with_a_malformed_row_stops_or_skips_it_with_lenient(tmp_path, capsys):
    folder = tmp_path / "field"
    tone(folder / "a.wav")
    events = make_events({"start_s": [0.1, 0.5], "end_s": [0.4, 0.9], "label": ["x", "y"]})
    table = write_annotations(events, folder / "a.Table.1.selections.txt", "raven")
    lines = table.read_text().splitlines()
    lines[2] = lines[2].replace("0.9", "0.05")  # the second selection ends before it starts
    table.write_text("\n".join(lines) + "\n")
    args = ["data", "add", str(folder), "--format", "raven", "--catalog", str(tmp_path / "cat")]
    assert main(args) == 2
    assert f"{table}:3: " in capsys.readouterr().err
    assert main([*args, "--lenient"]) == 0
    captured = capsys.readouterr()
    assert f"skipped {table}:3: " in captured.err
    assert "1 malformed annotation row(s) skipped" in captured.out and "1 events" in captured.out
