"""Synthetic soundscapes: real call snippets placed onto real backgrounds, with exact event tables.

Pipeline (``biomae data synth``):

1. :func:`cut_snippets` cuts one snippet per annotated event (from index/events.csv style or
   canonical CSV, or from a catalog's events) with ``margin_s`` on each side, shortened so that it
   never reaches a neighbouring annotated event, and faded in/out (raised cosine, at most
   ``fade_s``) within the margins only. Events that overlap another event of the same recording,
   lie outside the duration/band filters, are silent, or whose band exceeds the output Nyquist are
   skipped and counted by reason (never silently). Unannotated sounds inside a margin (e.g.
   bfsongrepo's unlabelled calls) come along unlisted: keep ``margin_s`` small.
   Recordings and backgrounds have their mean (DC offset) removed on load, so that power measures
   sound, not offset.
2. :func:`load_backgrounds` loads unlabeled recordings; :func:`synthesize` builds a background of
   ``duration_s`` from random crops stitched with crossfades (silence when there are none).
   "Unlabeled" is not "empty": vocalizations already in a background are not in the table, so pick
   quiet backgrounds (night, wind, rain) when the table must hold every call.
3. :func:`synthesize` draws ``Poisson(density_per_min * duration_s / 60)`` calls; each call's label
   follows ``label_weights`` (uniform over labels by default), its snippet is uniform within the
   label; with probability ``overlap`` it is placed so that its event overlaps an already placed
   call's event, otherwise where it overlaps none (``max_tries`` draws; a call that finds no room is
   not placed and counted in ``events.attrs["synth"]["n_unplaced"]``). Snippets are always placed
   entirely inside the soundscape, so no call is clipped and ``kept_fraction`` is 1.
4. Each call's SNR is uniform in ``snr_db`` and follows :mod:`biomae.augment.mixing`: snippet
   power over its event span against the *pure background's* power over the same samples (floored
   at ``floor_db`` dBFS, so a silent background gives calls at ``floor_db + snr`` dBFS).

5. Backgrounds may also come from a catalog by ``role`` (``background_catalog``,
   ``background_roles``: the real ambiences, rain, wind and water of
   :mod:`biomae.datasets.adapters_sources`), and with probability ``negative_prob`` a soundscape
   is a hard negative (:mod:`biomae.datasets.synth.negatives`): generated call-free sound (noise
   from −80 to −10 dBFS, dithered silence, handling clicks, rain-like impulses), no call placed,
   an empty table, and its kind under ``negative`` in the manifest. ``boundaries_only`` skips
   the whole-clip events of clip-labelled catalog recordings (``biomae data derive`` first).

The table lists exactly the calls placed: ``start_s``/``end_s`` are the snippet's event times
shifted by the integer onset, with label, taxon, ``low_hz``/``high_hz`` from the source event (NaN
when unknown), ``source="synth"``, and the extra columns ``kept_fraction``, ``snr_db``, ``origin``
(source recording) and ``origin_start_s``. :func:`write_soundscapes` writes FLAC + canonical CSV +
Raven table per soundscape and ``manifest.json``, all atomically; a soundscape whose peak exceeds
0.99 is scaled down as a whole (``gain_db`` in the manifest). Everything is reproducible from
``seed``.
"""

from biomae.datasets.synth.negatives import NEGATIVE_KINDS, hard_negative
from biomae.datasets.synth.place import SynthConfig, synthesize
from biomae.datasets.synth.sources import (
    Snippet,
    cut_snippets,
    find_backgrounds,
    load_backgrounds,
    read_event_csv,
)
from biomae.datasets.synth.write import add_arguments, run, write_soundscapes

__all__ = [
    "NEGATIVE_KINDS",
    "hard_negative",
    "Snippet",
    "SynthConfig",
    "add_arguments",
    "cut_snippets",
    "find_backgrounds",
    "load_backgrounds",
    "read_event_csv",
    "run",
    "synthesize",
    "write_soundscapes",
]
