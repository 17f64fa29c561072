"""``biomae annotate``: folders of recordings in, event tables (and pictures) out — resumably.

For every recording found under the inputs (files, folders searched recursively, globs) a detector
returns an event table, written in each chosen format under ``out_dir``.

Output names (a recording's *key*) depend only on the recording and the input that reached it,
never on which other inputs are given (``siteA/x.flac`` and ``siteB/x.flac`` never collide): the
rules are in :mod:`biomae.annotate.recordings`.

Beside the tables (``<key>.selections.txt``, ...):

- ``run.json`` — the settings (detector parameters, formats, pictures) the results were made with,
  the inputs and the biomae version. A rerun with other settings into a folder that holds results is
  refused, listing each change (old -> new); ``overwrite=True`` (``--overwrite``) redoes every
  recording. New inputs with the same settings are added to the run;
- ``manifest.jsonl`` — one line per finished recording (done or error), appended as each ends,
  keyed by the recording's resolved path, size and modification time: a rerun skips the recordings
  done whose file is unchanged and whose outputs all exist, and redoes the others (a changed file
  included); under ``torchrun`` each rank appends to its own ``manifest.rankN.jsonl``;
- ``summary.csv`` — one row per recording: status, the detector that ran on it, events, duration,
  sample rate, channels, a warning (a truncated file; pictures limited to ``max_pages``), seconds;
- ``errors.csv`` — every recording that could not be read, with the reason (the run goes on);
- ``events.csv`` / ``events.parquet`` — all events of the run in one canonical table.

Guarantees: every file is written atomically (temporary file, then rename) and a recording's
formats are written all or none, so an interrupted or killed run (Ctrl-C, kill -9) leaves no
half-written table, the next run removes the temporary files a killed run left and resumes where
it stopped, and each recording's events appear in ``events.csv`` exactly once. A recording's
tables are fsynced together and renamed (its state table last, one folder fsync) before its
manifest line is appended and fsynced, so after a power loss too a recording the manifest lists
as done has whole tables. They are written by a writer thread while the detector goes on with
the next recordings (at most two behind; Ctrl-C waits for those to be written whole).
Events are clipped to the recording (an end rounded past it is set to its end, times to the
microsecond, never past it); an event so cut is kept even when now shorter than the detector's
minimum duration. A recording that fails (unreadable, or a format that cannot hold its events) is
an error row with no outputs. An error while writing outputs (disk full) is not a recording's
error: the run stops with :class:`OutputError` naming the path, keeping every recording
already written.

Data parallel over processes, GPUs and nodes: launched by ``torchrun`` (``WORLD_SIZE`` > 1), rank
``r`` of ``W`` annotates recordings ``r, r + W, r + 2W, …`` of the sorted list (a disjoint share),
then all ranks meet at a barrier (gloo) and rank 0 merges every rank's manifest into the run's
summary and combined tables::

    torchrun --nproc-per-node 4 -m biomae annotate recordings/ --out annotations/ --model M
"""

from biomae.annotate.files import STATE_DIR, OutputError, UsageError
from biomae.annotate.recordings import Recording, find_recordings
from biomae.annotate.run import AnnotateConfig, annotate, detector_name, fit_to_recording

__all__ = [
    "STATE_DIR",
    "AnnotateConfig",
    "OutputError",
    "Recording",
    "UsageError",
    "annotate",
    "detector_name",
    "find_recordings",
    "fit_to_recording",
]
