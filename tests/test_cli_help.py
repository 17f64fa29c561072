"""Every ``biomae`` subcommand's ``--help`` is complete and plain: a description on each
subcommand, a help text on each option, no reStructuredText markup (````x````) — read from the
parsers themselves, so a new option without help fails here."""

from __future__ import annotations

import argparse

import pytest

from biomae.cli import build_parser


def subcommands(parser: argparse.ArgumentParser, prefix: str = "biomae"):
    """``(name, parser)`` for every subcommand, nested ones (``biomae data import``) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                configure = getattr(sub, "_configure", None)  # data synth adds options when used
                if configure is not None:
                    sub._configure = None
                    configure(sub)
                yield f"{prefix} {name}", sub
                yield from subcommands(sub, f"{prefix} {name}")


def problems(name: str, parser: argparse.ArgumentParser) -> list[str]:
    found = []
    if not (parser.description or "").strip():
        found.append(f"{name}: no description")
    texts = [parser.description or "", parser.epilog or ""]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        label = "/".join(action.option_strings) or action.dest
        if isinstance(action, argparse._SubParsersAction):
            continue
        if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
            found.append(f"{name} {label}: no help text")
        texts.append(action.help or "")
    if any("``" in text for text in texts):
        found.append(f"{name}: reStructuredText markup (``) in its help")
    return found


ALL = sorted(subcommands(build_parser()), key=lambda item: item[0])


def test_the_walk_finds_every_command():
    names = {name for name, _ in ALL}
    assert {"biomae pretrain", "biomae finetune", "biomae embed", "biomae models"} <= names


@pytest.mark.parametrize(
    "name, parser",
    [
        pytest.param(
            name,
            parser,
            id=name.removeprefix("biomae "),
        )
        for name, parser in ALL
    ],
)
def test_help_is_complete_and_plain(name, parser):
    assert problems(name, parser) == []


def test_the_top_level_blurb_claims_no_species():
    text = build_parser().description
    assert "call" in text and "fine-tuned" in text
    assert "what made it" not in text


def test_evaluate_usage_shows_out_as_required():
    usage = dict(ALL)["biomae evaluate"].format_usage()
    assert "--out DIR" in usage and "[--out" not in usage


@pytest.mark.parametrize(
    "command",
    ["pretrain", "finetune", "embed", "annotate", "data prepare", "data import", "data add"],
)
def test_one_progress_switch(command):
    parser = dict(ALL)[f"biomae {command}"]
    switch = [a for a in parser._actions if "--no-progress" in a.option_strings]
    assert switch, f"biomae {command} has no --no-progress"
    others = [a for a in parser._actions if a.dest == switch[0].dest and a is not switch[0]]
    assert not others, f"biomae {command}: a second progress switch"
