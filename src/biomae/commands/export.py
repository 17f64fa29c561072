"""``biomae export MODEL --onnx [OUT.onnx] [--int8]``: a detection model as one ONNX graph."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a detection model as an ONNX graph for ONNX Runtime (edge devices)",
        description="Write a fine-tuned detection model (or the starter) as one ONNX graph, front "
        "end included: audio windows in, frame scores out (biomae.export). Run it with "
        "biomae annotate --model OUT.onnx, or on any ONNX Runtime. Without OUT the graph goes to "
        "the cache that biomae annotate --runtime onnx uses (with --embedding: the encoder's graph "
        "for biomae embed). Needs the onnx extra: "
        "pip install 'biomae[onnx]'.",
    )
    p.add_argument("model", metavar="MODEL", help="a .safetensors detection model, or starter")
    p.add_argument(
        "--onnx",
        nargs="?",
        const="",
        required=True,
        metavar="OUT",
        help="the .onnx file to write (no value: the cache --runtime onnx reads)",
    )
    p.add_argument(
        "--embedding",
        action="store_true",
        help="the encoder's graph for biomae embed (windows in, tokens out) instead of the "
        "detection graph; MODEL may be an encoder",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="int8 weights (dynamic quantisation): smaller and faster, scores less exact",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from biomae.export import export_embedding_onnx, export_onnx
    from biomae.onnx_scorer import cached_onnx_path

    try:
        if args.embedding and args.int8:
            raise ValueError("--int8 quantises detection graphs only: drop it with --embedding")
        kind = "embed" if args.embedding else "detect"
        out = args.onnx or cached_onnx_path(args.model, int8=args.int8, kind=kind)
        if args.embedding:
            path = export_embedding_onnx(args.model, out)
        else:
            path = export_onnx(args.model, out, int8=args.int8)
    except (ImportError, ValueError, FileNotFoundError) as err:
        print(f"biomae export: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
