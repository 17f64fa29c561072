"""``biomae pretrain`` / ``biomae finetune`` user stories around mistakes (issue 14): a wrongly
typed override, a changed config on resume, a corrupt checkpoint and a finished run each give one
clear line and exit code 2 (or 0 for the finished run) — never a traceback or "eval loss None"."""

from __future__ import annotations

import pytest
from test_finetune import SAMPLE_RATE, synth_soundscapes
from test_train_pretrain import write_config

from biomae.cli import main


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


TYPE_ERRORS = [
    ("optim.lr=abc", 'optim.lr="abc" is not a number, e.g. optim.lr=0.00015'),
    ("optim.max_steps=1.5", "optim.max_steps=1.5 is not an integer"),
    ("train.bf16=3", "train.bf16=3 is not true or false"),
]


@pytest.mark.parametrize(
    "command, override, expected",
    [("pretrain", *case) for case in TYPE_ERRORS]
    + [("finetune", *case) for case in TYPE_ERRORS]
    + [("pretrain", "data.n_fft_choices=abc", '"abc" is not a list of integers')],
)
def test_a_wrongly_typed_override_names_key_value_and_type(
    command, override, expected, tmp_path, capsys
):
    if command == "pretrain":
        argv = ["pretrain", "--config", write_config(tmp_path, tmp_path / "run"), override]
    else:
        argv = ["finetune", "--data", str(tmp_path), "--out", str(tmp_path / "run"), override]
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"biomae {command}: ") and expected in line


@pytest.fixture
def finished_pretrain(tmp_path, capsys):
    """A 2-step pretraining run in tmp_path/run; returns its config path."""
    toml = write_config(tmp_path, tmp_path / "run")
    assert main(["pretrain", "--config", toml, "optim.max_steps=2", "--no-progress"]) == 0
    capsys.readouterr()
    return toml


@pytest.mark.slow
def test_pretrain_resume_and_finished_runs_say_so(finished_pretrain, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(["pretrain", "--config", finished_pretrain, "optim.max_steps=2", "--no-progress"]) == 0
    )
    out = capsys.readouterr().out
    assert f"resuming from step 2 of {run / 'checkpoint.pt'}" in out
    assert "already complete at step 2" in out and "None" not in out
    assert "last eval loss" in out

    assert (
        main(["pretrain", "--config", finished_pretrain, "optim.max_steps=3", "--no-progress"]) == 0
    )
    out = capsys.readouterr().out
    assert "resuming from step 2" in out and "optim.max_steps 2 → 3" in out
    assert "step 3: eval loss" in out and "None" not in out


@pytest.mark.slow
def test_pretrain_resume_with_a_changed_config_names_each_field(
    finished_pretrain, tmp_path, capsys
):
    argv = ["pretrain", "--config", finished_pretrain, "--no-progress"]
    assert main([*argv, "data.batch_size=3", "model.overrides.decoder_depth=2"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "cannot resume from step 2" in line
    assert "data.batch_size 2 → 3" in line and "model.overrides.decoder_depth 1 → 2" in line
    assert "--out DIR" in line and "config.json" in line
    # the run's config.json still holds the run's own config
    assert '"batch_size": 2' in (tmp_path / "run" / "config.json").read_text()
    # --out starts a new run beside it (the same as train.out_dir=)
    assert (
        main([*argv, "data.batch_size=3", "optim.max_steps=1", "--out", str(tmp_path / "b")]) == 0
    )
    assert (tmp_path / "b" / "encoder.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_pretrain_checkpoint_is_named_with_the_fix(
    finished_pretrain, tmp_path, capsys, damage
):
    ckpt = tmp_path / "run" / "checkpoint.pt"
    if damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    else:
        ckpt.write_bytes(b"not a checkpoint at all\n" * 10)
    assert main(["pretrain", "--config", finished_pretrain, "--no-progress"]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"checkpoint {ckpt} is unreadable" in line and "delete it" in line


@pytest.fixture
def finished_finetune(tmp_path_factory, tmp_path, capsys):
    """A 1-step fine-tuning run in tmp_path/ft; returns the command line that made it."""
    data = tmp_path_factory.mktemp("scapes")
    synth_soundscapes(data, n_files=4, seed=1, duration_s=4.0)
    toml = tmp_path / "ft.toml"
    toml.write_text(
        '[model]\npreset = "tiny"\noverrides = {"encoder.n_mels" = 64, "encoder.depth" = 1}\n'
        f"[front_end]\nsample_rate = {SAMPLE_RATE}\nn_fft = 512\nn_mels = 64\n"
        "[data]\nwindow_s = 1.28\nbatch_size = 2\nval_fraction = 0.5\n"
        "[optim]\nmax_steps = 1\nwarmup_steps = 1\n"
    )
    argv = ["finetune", "--config", str(toml), "--init", "none", "--data", str(data)]
    argv += ["--out", str(tmp_path / "ft"), "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    return argv


@pytest.mark.slow
def test_finetune_resume_errors_are_one_clear_line(finished_finetune, tmp_path, capsys):
    assert main(finished_finetune) == 0
    out = capsys.readouterr().out
    assert "resuming from step 1" in out and "already complete at step 1" in out

    assert main([*finished_finetune, "head.hidden_dim=64"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "cannot resume from step 1" in line and "head.hidden_dim 128 → 64" in line

    ckpt = tmp_path / "ft" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    assert main(finished_finetune) == 2
    line = one_line(capsys.readouterr().err)
    assert f"checkpoint {ckpt} is unreadable" in line and "delete it" in line


def test_pretrain_without_recordings_is_one_line(tmp_path, capsys):
    toml = write_config(tmp_path, tmp_path / "run")
    glob = f'data.audio_globs=["{tmp_path / "none" / "*.flac"}"]'
    assert main(["pretrain", "--config", toml, glob, "--no-progress"]) == 2
    assert "matches no file" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_model_file_is_one_line_in_embed_and_search(tmp_path, capsys, damage):
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "src" / "biomae" / "data"
    model = tmp_path / "model.safetensors"
    if damage == "truncated":
        model.write_bytes((shipped / "starter.safetensors").read_bytes()[:1000])
    else:
        model.write_bytes(b"garbage")
    clip = str(shipped / "example.flac")
    argv = ["embed", clip, "--model", str(model), "--out", str(tmp_path / "e.parquet")]
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert f"model file {model} is unreadable" in line and "export or copy it again" in line
    assert not (tmp_path / "e.parquet").exists()

    index = tmp_path / "none.parquet"
    assert main(["search", clip, "--index", str(index), "--model", str(model)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"index {index} not found" in line and "biomae embed" in line
