"""Praat TextGrids: interval tiers become events (long and short text formats, UTF-8 or UTF-16).

Reading follows Praat's own rule for text files: the file is a stream of values (numbers, quoted
strings with ``""`` for a quote, and ``<exists>``/``<absent>`` flags); every other word (``xmin =``,
``item [1]:``) is a comment. That one tokenizer reads the long and the short format alike.

- Each non-empty interval of an interval tier is an event: label = its text (as written), times in
  seconds. Empty (or blank) intervals are gaps between events, not events, and are not returned.
- ``tier``: a tier name, or a tier number counted from 1 as Praat does; default every interval tier.
  The tier's name is kept in the extra column ``tier``. Point tiers (``TextTier``) hold instants,
  not intervals: they are skipped by default, and naming one is an error.
- ``recording`` defaults to the file name without ``.TextGrid``.

Writing produces interval tiers (long text format, UTF-8) from 0 to ``duration_s`` (default: the
last end): events become intervals, the gaps between them empty intervals. What one interval tier
cannot hold (overlapping, empty-label or zero-length events) is written elsewhere, with a warning
(see :func:`write`).
"""

from __future__ import annotations

import bisect
import re
import warnings
from pathlib import Path

import pandas as pd

from biomae.annotations.format_helpers import finish_events, format_float, read_text
from biomae.annotations.schema import EventTableError, validate_events
from biomae.atomic_io import atomic_open

SUFFIX = ".TextGrid"
WRITE_OPTIONS = ("duration_s",)  # header facts annotate passes to write()
_TOKEN = re.compile(r'"((?:[^"]|"")*)"|(\S+)')


class _Values:
    """The values of a TextGrid in order, each with its 1-based line."""

    def __init__(self, text: str, where: str) -> None:
        self.where = where
        starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.items: list[tuple[object, int]] = []
        for match in _TOKEN.finditer(text):
            line = bisect.bisect_right(starts, match.start())
            if match.group(1) is not None:
                self.items.append((match.group(1).replace('""', '"'), line))
                continue
            word = match.group(2)
            if word in ("<exists>", "<absent>"):
                self.items.append((word, line))
                continue
            try:
                self.items.append((float(word), line))
            except ValueError:
                pass  # a comment word such as "xmin", "=", "item", "[1]:"
        self.position = 0

    def next(self, kind: type, what: str) -> tuple:
        """The next value (of type ``kind``) and its line; raise naming the line if it is not."""
        if self.position >= len(self.items):
            raise EventTableError(f"{self.where}: file ends while reading {what}")
        value, line = self.items[self.position]
        self.position += 1
        if not isinstance(value, kind):
            raise EventTableError(f"{self.where}:{line}: expected {what}, found {value!r}")
        return value, line


def read(
    path: str | Path,
    *,
    tier: str | int | None = None,
    recording: str | None = None,
    lenient: bool = False,
) -> pd.DataFrame:
    """Read the interval tiers of a TextGrid into an event table (``source="textgrid"``).

    Args:
        path: the ``.TextGrid`` file (text format; short or long; UTF-8 or UTF-16).
        tier: tier name, or tier number counted from 1; default every interval tier.
        recording: recording name (default: the file name without ``.TextGrid``).
        lenient: skip bad intervals (listed in ``events.attrs["skipped"]``) instead of raising.

    Raises:
        EventTableError: not a text TextGrid, a structural error (naming the line), an unknown
            tier, a point tier named in ``tier``, or (strict) a bad interval.
    """
    path = Path(path)
    where = str(path)
    values = _Values(read_text(path), where)
    file_type, _ = values.next(str, 'File type "ooTextFile"')
    object_class, line = values.next(str, 'Object class "TextGrid"')
    if file_type != "ooTextFile" or not object_class.startswith("TextGrid"):
        raise EventTableError(
            f"{where}:{line}: not a text TextGrid ({file_type!r}, {object_class!r})"
        )
    values.next(float, "xmin")
    values.next(float, "xmax")
    flag, _ = values.next(str, "<exists>")
    n_tiers = int(values.next(float, "the number of tiers")[0]) if flag == "<exists>" else 0
    rows: list[dict] = []
    lines: list[int] = []
    names: list[tuple[str, str]] = []  # (class, name) of every tier
    for number in range(1, n_tiers + 1):
        tier_class, _ = values.next(str, "a tier class")
        name, _ = values.next(str, "a tier name")
        names.append((tier_class, name))
        values.next(float, "tier xmin")
        values.next(float, "tier xmax")
        size = int(values.next(float, "the number of intervals or points")[0])
        wanted = tier is None or tier == name or tier == number
        for _ in range(size):
            if tier_class == "IntervalTier":
                start_s, line = values.next(float, "interval xmin")
                end_s, _ = values.next(float, "interval xmax")
                text, _ = values.next(str, "interval text")
                if wanted and text.strip():
                    rows.append({"start_s": start_s, "end_s": end_s, "label": text, "tier": name})
                    lines.append(line)
            else:
                values.next(float, "point time")
                values.next(str, "point mark")
    if tier is not None:
        chosen = [c for i, (c, n) in enumerate(names, start=1) if tier in (n, i)]
        if not chosen:
            raise EventTableError(f"{where}: no tier {tier!r}; tiers are {[n for _, n in names]}")
        if chosen[0] != "IntervalTier":
            raise EventTableError(f"{where}: tier {tier!r} is a {chosen[0]}, not an IntervalTier")
    return finish_events(
        pd.DataFrame(rows, columns=["start_s", "end_s", "label", "tier"]),
        lines=lines,
        where=where,
        lenient=lenient,
        constant_columns={
            "recording": path.name.removesuffix(".TextGrid") if recording is None else recording,
            "source": "textgrid",
        },
    )


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def write(
    events: pd.DataFrame,
    path: str | Path,
    *,
    tier_name: str = "events",
    duration_s: float | None = None,
) -> None:
    """Write events as interval tiers (long text format), atomically.

    What one interval tier cannot hold is written so that nothing is lost, with a warning: events
    overlapping an earlier one go to further tiers (``events 2``, ...; the reader reads every
    interval tier); zero-length events go to a point tier ``<tier_name> (instants)`` (readers of
    intervals skip it); an empty label becomes ``?`` (an empty interval is a gap).

    Args:
        events: a valid event table of one recording.
        path: the ``.TextGrid`` file.
        tier_name: the name of the (first) interval tier.
        duration_s: the TextGrid's end (s); default the last event's end.

    Raises:
        EventTableError: the table breaks the schema.
        ValueError: several recordings, or an event after ``duration_s``.
    """
    where = str(path)
    validate_events(events, where=where)
    if events["recording"].nunique() > 1:
        raise ValueError(f"{where}: several recordings in one TextGrid; write one per recording")
    order = events.sort_values(["start_s", "end_s"], kind="stable")
    end_all = float(order["end_s"].max()) if len(order) else 0.0
    duration_s = end_all if duration_s is None else float(duration_s)
    if end_all > duration_s:
        raise ValueError(f"{where}: an event ends at {end_all} s, after duration_s={duration_s}")
    layers: list[list[tuple[float, float, str]]] = [[]]
    cursors, points, blank = [0.0], [], 0
    for row in order.itertuples(index=False):
        label = str(row.label)
        if not label.strip():
            label, blank = "?", blank + 1
        if row.end_s <= row.start_s:
            points.append((row.start_s, label))
            continue
        layer = next((k for k, c in enumerate(cursors) if row.start_s >= c), len(cursors))
        if layer == len(cursors):
            layers.append([])
            cursors.append(0.0)
        if row.start_s > cursors[layer]:
            layers[layer].append((cursors[layer], row.start_s, ""))
        layers[layer].append((row.start_s, row.end_s, label))
        cursors[layer] = row.end_s
    for layer, cursor in zip(layers, cursors, strict=True):
        if duration_s > cursor or not layer:
            layer.append((cursor, max(duration_s, cursor), ""))
    _warn_rewritten(where, blank, len(layers) - 1, len(points), tier_name)
    names = [tier_name] + [f"{tier_name} {k}" for k in range(2, len(layers) + 1)]
    tiers = [_interval_tier(n, layer, duration_s) for n, layer in zip(names, layers, strict=True)]
    if points:
        tiers.append(_point_tier(f"{tier_name} (instants)", points, duration_s))
    xmax = format_float(duration_s)
    out = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0"]
    out += [f"xmax = {xmax}", "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for number, tier in enumerate(tiers, start=1):
        out += [f"    item [{number}]:"] + [" " * 8 + line for line in tier]
    with atomic_open(path) as handle:
        handle.write("\n".join(out) + "\n")


def _warn_rewritten(where: str, blank: int, extra_tiers: int, points: int, tier_name: str) -> None:
    parts = []
    if blank:
        parts.append(f"{blank} empty label(s) written as '?'")
    if extra_tiers:
        parts.append(f"overlapping events spread over {extra_tiers + 1} interval tiers")
    if points:
        parts.append(f"{points} zero-length event(s) in point tier '{tier_name} (instants)'")
    if parts:
        message = f"{where}: {'; '.join(parts)} (one interval tier cannot hold them)"
        warnings.warn(message, stacklevel=3)


def _interval_tier(name: str, intervals: list[tuple[float, float, str]], duration_s: float) -> list:
    tier = ['class = "IntervalTier"', f"name = {_quote(name)}", "xmin = 0"]
    tier += [f"xmax = {format_float(duration_s)}", f"intervals: size = {len(intervals)}"]
    for number, (start_s, end_s, text) in enumerate(intervals, start=1):
        tier += [f"intervals [{number}]:", f"    xmin = {format_float(start_s)}"]
        tier += [f"    xmax = {format_float(end_s)}", f"    text = {_quote(text)}"]
    return tier


def _point_tier(name: str, points: list[tuple[float, str]], duration_s: float) -> list:
    tier = ['class = "TextTier"', f"name = {_quote(name)}", "xmin = 0"]
    tier += [f"xmax = {format_float(duration_s)}", f"points: size = {len(points)}"]
    for number, (time_s, mark) in enumerate(points, start=1):
        tier += [f"points [{number}]:", f"    number = {format_float(time_s)}"]
        tier += [f"    mark = {_quote(mark)}"]
    return tier
