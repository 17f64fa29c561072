"""`biomae evaluate` and `biomae data ...` --help: every subcommand described, every option
explained, required options shown as required, no reStructuredText markup, --no-progress."""

from __future__ import annotations

import argparse

import pytest

from biomae.cli import build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    top = _subparsers(build_parser())
    commands = [("evaluate", top["evaluate"])]
    for name, sub in _subparsers(top["data"]).items():
        configure = getattr(sub, "_configure", None)  # synth adds its options when used
        if configure is not None:
            sub._configure = None
            configure(sub)
        commands.append((f"data {name}", sub))
    return commands


@pytest.mark.parametrize("name, parser", _commands(), ids=[n for n, _ in _commands()])
def test_every_option_has_help_and_no_rst_markup(name, parser):
    assert parser.description and "``" not in parser.description, name
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"biomae {name}: {action.option_strings or action.dest} has no help"
        assert "``" not in action.help, f"biomae {name}: {action.option_strings}"
    assert "``" not in parser.format_help()


def test_evaluate_usage_shows_out_as_required():
    usage = _subparsers(build_parser())["evaluate"].format_usage()
    assert "--out DIR" in usage and "[--out" not in usage


@pytest.mark.parametrize("command", ["prepare", "import", "add"])
def test_progress_bars_switch_off_with_no_progress(command, capsys):
    with pytest.raises(SystemExit):
        main(["data", command, "--help"])
    assert "--no-progress" in capsys.readouterr().out
