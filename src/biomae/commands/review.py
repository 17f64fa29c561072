"""Review detections in the browser: listen, accept, reject, relabel, fix edges, add missed calls.

    biomae review annotations/                      # serves http://127.0.0.1:PORT/?token=...
    biomae review annotations/ --export reviewed/ --format raven,audacity,csv
    biomae review annotations/ --summary            # the detector's precision, per label

Every decision is written at once, atomically, to OUT/review.csv (current and original values,
which fields changed, reviewer, UTC time) and appended to OUT/review.log.jsonl; closing the browser
or killing the server loses nothing. Only 127.0.0.1 is served, and only requests carrying the
printed random token. --export writes each recording's reviewed events (rejected detections
dropped, corrections applied, drawn calls added) in the formats of `biomae annotate`.
`biomae finetune --data OUT` trains on the fully reviewed recordings (see docs/review.md).
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "review",
        help="review detections in the browser; export the reviewed tables",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the --out folder of biomae annotate")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: free one)")
    parser.add_argument("--reviewer", default="", help="name written with each decision ($USER)")
    parser.add_argument("--export", default=None, metavar="DIR", help="write reviewed tables")
    parser.add_argument(
        "--format", default="raven,audacity,csv", help="formats for --export (comma-separated)"
    )
    parser.add_argument(
        "--only-reviewed", action="store_true", help="--export: leave unreviewed detections out"
    )
    parser.add_argument("--summary", action="store_true", help="print the review summary, exit")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import secrets
    import socket

    from biomae.review.results import export, summary, summary_text
    from biomae.review.store import ReviewError, ReviewStore

    try:
        store = ReviewStore(args.out_dir, reviewer=args.reviewer)
    except (FileNotFoundError, ReviewError) as err:
        print(f"biomae review: {err}", file=sys.stderr)
        return 2
    if args.summary:
        print(summary_text(summary(store)))
        return 0
    if args.export:
        formats = [f.strip() for f in args.format.split(",") if f.strip()]
        try:
            paths = export(store, args.export, formats, only_reviewed=args.only_reviewed)
        except ValueError as err:
            print(f"biomae review: {err}", file=sys.stderr)
            return 2
        print(f"{len(paths)} file(s) written to {args.export}")
        return 0
    try:
        import uvicorn

        from biomae.review.server import create_app
    except ModuleNotFoundError as err:
        print(
            f"biomae review: {err.name} is not installed; pip install 'biomae[review]'",
            file=sys.stderr,
        )
        return 2
    import biomae.features  # noqa: F401  (the spectrograms' torch import, before the first click)

    token = secrets.token_urlsafe(24)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", args.port))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/?token={token}"
    print(f"reviewing {len(store.table)} events of {len(store.recordings)} recording(s)")
    print(f"open {url}", flush=True)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(url)
    uvicorn.run(create_app(store, token), host="127.0.0.1", port=port, log_level="warning")
    return 0
