"""``biomae search QUERY_CLIP --index embeddings.parquet``: nearest neighbours of a clip."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "search",
        help="find the windows or events most similar to a query clip",
        description="Embed QUERY_CLIP with the index's model (its mean over windows) and list the "
        "index rows by cosine similarity.",
    )
    p.add_argument("query", metavar="QUERY_CLIP", help="an audio clip")
    p.add_argument("--index", required=True, help="embeddings.parquet from biomae embed")
    p.add_argument(
        "--model",
        default=None,
        help="a model file, 'embedding' or 'detector' (default: the model the index was made with)",
    )
    p.add_argument("-k", type=int, default=10, help="how many neighbours, >= 1 (default 10)")
    p.add_argument("--out", default=None, help="also write the results as CSV")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    # imported when used (pandas, tempfile): `biomae --help` imports only the parsers
    from biomae.atomic_io import atomic_open
    from biomae.embed import Embedder, read_embeddings, resolve_embedding_model, search
    from biomae.models.files import read_metadata

    if args.k < 1:
        print(f"biomae search: -k {args.k} must be >= 1", file=sys.stderr)
        return 2
    if not Path(args.index).is_file():
        print(
            f"biomae search: index {args.index} not found; make one with "
            f"biomae embed RECORDINGS --model MODEL --out {args.index}",
            file=sys.stderr,
        )
        return 2
    try:
        frame, matrix, metadata = read_embeddings(args.index)
        model = resolve_embedding_model(args.model or metadata["biomae_model"])
        read_metadata(model)  # a truncated or corrupt file: one line naming it
        embedder = Embedder(model)
        if embedder.dim != matrix.shape[1]:
            raise ValueError(f"model dimension {embedder.dim} != index dimension {matrix.shape[1]}")
        query = np.mean(np.stack(embedder.embed_windows(args.query)["embedding"]), axis=0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"biomae search: {err}", file=sys.stderr)
        return 2
    order, similarity = search(query, matrix, k=args.k)
    result = frame.iloc[order].assign(similarity=similarity).reset_index(drop=True)
    print(result.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        with atomic_open(args.out) as handle:
            result.to_csv(handle, index=False)
    return 0
