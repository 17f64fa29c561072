"""``biomae data``: the unified dataset — list adapters, import, add, query, stats, synth.

- ``biomae data datasets``: the registered datasets (name, task, taxa, license).
- ``biomae data import NAME PATH --catalog DIR``: convert a local copy of dataset NAME (``shared``
  for ``../shared/data``) into the catalog; re-importing replaces that dataset's rows.
- ``biomae data add PATH... --format raven [--dataset NAME] --catalog DIR``: audio files or folders
  with annotation files beside them (``a.wav`` + ``a<SUFFIX>`` of the format, e.g.
  ``a.selections.txt`` / ``a.Table.1.selections.txt``); audio without one is added unlabeled.
- ``biomae data prepare --sample-rate HZ --catalog DIR``: decode and resample the catalog's
  recordings once into its prepared-audio store, which the window samplers memory-map (resumes;
  failures are listed and skipped). ``import`` / ``add`` take ``--prepare HZ`` to do it at once.
- ``biomae data query "SELECT ..." --catalog DIR``: DuckDB over views recordings, events, label_map.
- ``biomae data stats --catalog DIR``: counts, hours, sample rates per dataset and taxon.
- ``biomae data sources --root DIR [--import]``: the clonable sources present under DIR, and the
  commands that fetch the missing ones.
- ``biomae data derive --catalog DIR [--min-snr-db 10]``: call boundaries in clean clips.
- ``biomae data synth ...``: synthetic soundscapes (``biomae.datasets.synth``, when installed).
"""

from __future__ import annotations

import argparse
import sys
import warnings

DEFAULT_CATALOG = "catalog"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="the unified dataset: import public datasets, query the catalog",
        description="Import public bioacoustic datasets into one catalog (Parquet + DuckDB).",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=_LazyParser)
    sub.required = True

    p = sub.add_parser(
        "datasets",
        help="list the datasets biomae can import",
        description="List the registered datasets: name, task, taxa and license.",
    )
    p.add_argument("--verbose", action="store_true", help="also print URL, citation and layout")
    p.set_defaults(run=run_datasets)

    p = sub.add_parser(
        "import",
        help="import a local copy of a registered dataset",
        description="Convert a local copy of dataset NAME (`shared` for the shared data folder) "
        "into the catalog; re-importing replaces that dataset's rows.",
    )
    p.add_argument("dataset", metavar="NAME", help="dataset name (see `biomae data datasets`)")
    p.add_argument("path", metavar="PATH", help="folder holding the dataset as downloaded")
    _catalog_arg(p)
    _lenient_arg(p)
    _prepare_arg(p)
    p.set_defaults(run=run_import)

    p = sub.add_parser(
        "add",
        help="add audio files with annotation files beside them",
        description="Add audio files (or folders of them) to the catalog, each paired with the "
        "annotation file of --format beside it: a.wav with a.selections.txt or "
        "a.Table.1.selections.txt (raven), a.wav.not.mat or a.cbin.not.mat (notmat), ... "
        "Audio without annotation is added unlabeled; audio and annotation files left unpaired "
        "are listed in warnings.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    p.add_argument("--format", required=True, metavar="FMT", help="annotation format, e.g. raven")
    p.add_argument("--dataset", default="local", help="dataset name in the catalog (default local)")
    _catalog_arg(p)
    _lenient_arg(p)
    _prepare_arg(p)
    p.set_defaults(run=run_add)

    p = sub.add_parser(
        "prepare",
        help="decode and resample recordings once for training (memory-mapped by the samplers)",
        description="Decode the catalog's recordings, resample them to HZ and store them as raw "
        "PCM under CATALOG/prepared/, which training memory-maps with data.prepared = true. "
        "Already prepared recordings are skipped, "
        "so an interrupted run resumes; a file that cannot be decoded is reported and skipped.",
    )
    p.add_argument(
        "--sample-rate", type=int, required=True, metavar="HZ", help="the model's sample rate"
    )
    p.add_argument(
        "--dtype", choices=("int16", "float32"), default="int16",
        help="stored sample type (default int16: 16-bit, half the bytes)",
    )  # fmt: skip
    p.add_argument(
        "--where", metavar="SQL", help="only recordings matching this condition on the "
        "recordings view, e.g. \"dataset = 'shared' AND annotation = 'full'\"",
    )  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="decoding processes (default 2)")
    _progress_arg(p)
    p.add_argument(
        "--prune", action="store_true",
        help="also delete stored files of recordings no longer in the catalog",
    )  # fmt: skip
    _catalog_arg(p)
    p.set_defaults(run=run_prepare)

    p = sub.add_parser(
        "query",
        help="run SQL over the catalog (views recordings, events, label_map)",
        description="Run a DuckDB SQL query over the catalog's views recordings, events and "
        "label_map, and print the result.",
    )
    p.add_argument(
        "sql", metavar="SQL", help='the query, e.g. "SELECT label, count(*) FROM events GROUP BY 1"'
    )
    p.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    _catalog_arg(p)
    p.set_defaults(run=run_query)

    p = sub.add_parser(
        "stats",
        help="recordings, hours, events and sample rates per dataset",
        description="Print recordings, hours, events and sample rates per dataset and taxon.",
    )
    _catalog_arg(p)
    p.set_defaults(run=run_stats)

    p = sub.add_parser(
        "sources",
        help="which small public sources are in a folder of clones, and how to get the others",
        description="List the clonable public sources (biomae.datasets.adapters_sources) found "
        "under --root (a folder of `git clone`s and unpacked Debian packages) and print, for each "
        "missing one, the commands that fetch it. With --import, import the present ones into "
        "--catalog. Exit status 1 when a source is missing.",
    )
    p.add_argument("--root", required=True, metavar="DIR", help="folder holding the clones")
    p.add_argument("--import", dest="do_import", action="store_true", help="import those present")
    _catalog_arg(p)
    p.set_defaults(run=run_sources)

    p = sub.add_parser(
        "derive",
        help="derive call boundaries inside clean clip-labelled recordings",
        description="For every clip-labelled recording of the catalog, find the calls that stand "
        "--min-snr-db above the clip's floor; in clean clips (biomae.datasets.derive) they "
        "replace the whole-clip event, marked note = 'derived: ...'.",
    )
    p.add_argument(
        "--min-snr-db", type=float, default=10.0, help="a call's peak above the floor (default 10)"
    )
    _catalog_arg(p)
    p.set_defaults(run=run_derive)

    sub.add_parser(
        "synth",
        help="synthetic soundscapes with known events",
        description="Place real call snippets onto real backgrounds (biomae.datasets.synth).",
        configure=_configure_synth,
    )


class _LazyParser(argparse.ArgumentParser):
    """A subcommand parser whose arguments are added by ``configure(parser)`` only when it is
    used, so that ``biomae`` does not import the synth generator to start."""

    def __init__(self, *args, configure=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._configure = configure

    def parse_known_args(self, args=None, namespace=None):
        if self._configure is not None:
            configure, self._configure = self._configure, None
            configure(self)
        return super().parse_known_args(args, namespace)


def _configure_synth(parser: argparse.ArgumentParser) -> None:
    try:
        from biomae.datasets import synth
    except ImportError as err:  # only this subcommand is missing
        parser.set_defaults(run=lambda args, err=err: _unavailable("synth", err))
    else:
        synth.add_arguments(parser)
        parser.set_defaults(run=synth.run)


def _catalog_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalog",
        default=DEFAULT_CATALOG,
        metavar="DIR",
        help=f"catalog folder (default ./{DEFAULT_CATALOG})",
    )


def _lenient_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lenient", action="store_true",
        help="skip malformed annotation rows (each is listed) instead of stopping at the first",
    )  # fmt: skip


def _prepare_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prepare", type=int, metavar="HZ",
        help="then prepare the catalog's recordings at HZ (as `biomae data prepare`)",
    )  # fmt: skip
    _progress_arg(parser)


def _progress_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false",
        help="no progress bar while preparing (default: shown on a terminal)",
    )  # fmt: skip


def _unavailable(name: str, err: Exception) -> int:
    print(f"biomae data {name}: not available ({err})", file=sys.stderr)
    return 2


def _fail(command: str, err: Exception) -> int:
    message = err.args[0] if isinstance(err, KeyError) and err.args else err
    print(f"biomae data {command}: {message}", file=sys.stderr)
    return 2


def run_datasets(args: argparse.Namespace) -> int:
    # the datasets: imported when used, so that `biomae --help` stays without it
    from biomae.datasets.registry import list_adapters

    adapters = list_adapters()
    width = max(len(a.name) for a in adapters)
    print(f"{'name':<{width}}  {'task':<14}  {'taxa':<48}  license")
    for a in adapters:
        taxa = a.taxa if len(a.taxa) <= 48 else a.taxa[:45] + "..."
        print(f"{a.name:<{width}}  {a.task:<14}  {taxa:<48}  {a.license}")
        if args.verbose:
            print(f"    {a.title}\n    url: {a.url}\n    cite: {a.citation}")
            print("    layout:\n" + "\n".join("      " + line for line in a.layout.splitlines()))
            if a.note:
                print(f"    note: {a.note}")
    return 0


def _report(summary) -> None:
    for row in summary.skipped:
        print(f"skipped {row}", file=sys.stderr)
    if summary.skipped:
        print(f"{len(summary.skipped)} malformed annotation row(s) skipped (--lenient)")
    for row in summary.clipped:
        print(f"clipped {row}", file=sys.stderr)
    if summary.clipped:
        print(f"{len(summary.clipped)} event(s) clipped to their recording's end (--lenient)")
    print(
        f"{summary.dataset}: {summary.n_recordings} recordings ({summary.hours:.2f} h), "
        f"{summary.n_events} events; replaced {summary.replaced_recordings} earlier recordings; "
        f"{summary.n_duplicates} duplicate(s) flagged"
    )


def run_import(args: argparse.Namespace) -> int:
    # the datasets: imported when used, so that `biomae --help` stays without it
    from biomae.datasets.catalog import Catalog

    catalog = Catalog(args.catalog)
    return _add_and_report(
        "import",
        args,
        lambda: catalog.import_dataset(args.dataset, args.path, lenient=args.lenient),
    )


def run_add(args: argparse.Namespace) -> int:
    # the datasets: imported when used, so that `biomae --help` stays without it
    from biomae.datasets.catalog import Catalog
    from biomae.datasets.local import import_paths

    catalog = Catalog(args.catalog)
    return _add_and_report(
        "add", args,
        lambda: import_paths(catalog, args.paths, args.format, dataset=args.dataset,
                             lenient=args.lenient),
    )  # fmt: skip


def _add_and_report(command: str, args: argparse.Namespace, add) -> int:
    """Run ``add()`` (an import), print its warnings and summary, then prepare if asked."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = add()
    except (KeyError, ValueError, OSError) as err:
        return _fail(command, err)
    for warning in caught:
        if "(lenient=True)" not in str(warning.message):  # the skipped rows are listed instead
            print(f"warning: {warning.message}", file=sys.stderr)
    _report(summary)
    where = _dataset_rows(args.dataset)
    return _prepare(args.catalog, args.prepare, where=where, progress=args.progress)


def _dataset_rows(dataset: str) -> str:
    return "dataset = '" + dataset.replace("'", "''") + "'"


def run_prepare(args: argparse.Namespace) -> int:
    code = _prepare(
        args.catalog, args.sample_rate, args.dtype, args.where, args.workers, args.progress
    )
    if args.prune and code != 2:
        from biomae.datasets.catalog import Catalog

        catalog = Catalog(args.catalog)
        stale = catalog.prepared_audio(args.sample_rate, args.dtype).prune(catalog.recordings())
        print(f"pruned {len(stale)} stored file(s) of recordings no longer in the catalog")
    return code


def _prepare(
    catalog: str,
    sample_rate: int | None,
    dtype: str = "int16",
    where: str | None = None,
    workers: int = 2,
    progress: bool = True,
) -> int:
    """Prepare the recordings (``where``) at ``sample_rate``; 0, or 1 when some failed."""
    if sample_rate is None:
        return 0
    from tqdm import tqdm

    # the datasets: imported when used, so that `biomae --help` stays without it
    from biomae.datasets.catalog import Catalog

    bar = tqdm(
        total=0, unit="file", desc="prepare", disable=None if progress else True, file=sys.stderr
    )

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    cat = Catalog(catalog)
    try:
        summary = cat.prepare_audio(
            sample_rate, dtype=dtype, where=where, workers=workers, progress=progress
        )
        folder = cat.prepared_audio(sample_rate, dtype).folder
    except Exception as err:  # bad rate / dtype, an empty catalog, DuckDB errors in --where
        bar.close()
        return _fail("prepare", err)
    bar.close()
    for path, reason in summary.failed:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(f"{summary} (store {folder})")
    return 1 if summary.failed else 0


def run_query(args: argparse.Namespace) -> int:
    import pandas as pd

    # the datasets: imported when used, so that `biomae --help` stays without it
    from biomae.datasets.catalog import Catalog

    try:
        table = Catalog(args.catalog).query(args.sql)
    except Exception as err:  # DuckDB's own error types (syntax, unknown column) included
        return _fail("query", err)
    if args.csv:
        table.to_csv(sys.stdout, index=False)
    else:
        with pd.option_context("display.max_rows", 200, "display.width", 200):
            print(table.to_string(index=False))
    return 0


def run_stats(args: argparse.Namespace) -> int:
    import pandas as pd

    # the datasets: imported when used, so that `biomae --help` stays without it
    from biomae.datasets.catalog import Catalog

    catalog = Catalog(args.catalog)
    if not catalog.recordings_path.exists():
        return _fail("stats", FileNotFoundError(f"catalog {args.catalog} is empty"))
    table = catalog.stats()
    with pd.option_context(
        "display.max_rows",
        500,
        "display.width",
        200,
        "display.max_colwidth",
        60,
        "display.float_format",
        "{:.3f}".format,
    ):
        print(table.to_string(index=False))
    totals = table[["n_recordings", "hours", "annotated_hours", "n_events"]].sum()
    print(
        f"total: {int(totals['n_recordings'])} recordings, {totals['hours']:.2f} h "
        f"({totals['annotated_hours']:.2f} h annotated), {int(totals['n_events'])} events"
    )
    return 0


def run_sources(args: argparse.Namespace) -> int:
    from biomae.datasets.sources import sources_status

    rows = sources_status(args.root)
    for row in rows:
        if row["path"] is not None:
            print(f"present  {row['dataset']:<22} {row['path']}")
        else:
            print(f"missing  {row['dataset']:<22} get it with:")
            print("\n".join(f"    cd {args.root} && {command}" for command in row["get"]))
    if args.do_import:
        from biomae.datasets.catalog import Catalog

        catalog = Catalog(args.catalog)
        for row in (r for r in rows if r["path"] is not None):
            try:
                _report(catalog.import_dataset(row["dataset"], row["path"]))
            except (KeyError, ValueError, OSError) as err:
                return _fail("sources", err)
    missing = sum(row["path"] is None for row in rows)
    print(f"{len(rows) - missing} of {len(rows)} sources present under {args.root}")
    return 1 if missing else 0


def run_derive(args: argparse.Namespace) -> int:
    from biomae.datasets.derive import DeriveConfig, derive_catalog

    try:
        config = DeriveConfig(min_snr_db=args.min_snr_db, off_db=min(5.0, args.min_snr_db))
        result = derive_catalog(args.catalog, config)
    except (ValueError, FileNotFoundError) as err:
        return _fail("derive", err)
    for line in result["unreadable"]:
        print(f"unreadable {line}", file=sys.stderr)
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(result["reasons"].items()))
    print(f"{result['clean']} clean clip(s), {result['events']} derived event(s) ({reasons})")
    return 0
