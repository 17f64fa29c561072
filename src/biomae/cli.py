"""The ``biomae`` command: a thin dispatcher. Each subcommand lives in ``biomae.commands.<name>``,
which defines ``add_parser(subparsers)`` (light: no heavy imports) and ``run(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import sys

from biomae import __version__

# name -> module under biomae.commands; a module that is missing is simply not offered.
COMMANDS = (
    "annotate",
    "embed",
    "search",
    "data",
    "models",
    "export",
    "pretrain",
    "finetune",
    "evaluate",
    "review",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biomae",
        description="Find animal calls in field recordings: each call's start and end time and "
        "its frequency box. The default model labels every event 'call'; naming species or call "
        "types needs a fine-tuned model (biomae finetune).",
    )
    parser.add_argument("--version", action="version", version=f"biomae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"biomae.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"biomae.commands.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print(
            "biomae: interrupted; outputs written so far are complete, rerun to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
