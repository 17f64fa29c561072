"""Pure metrics: scores from tables and arrays, importable by training and evaluation alike.

- :mod:`.events`: event F1 (IoU), onset/offset F1 (collars) and frame F1 over canonical event
  tables, with the conventions (groups, one-to-one matching, regions) documented once;
- :mod:`.matching`: the one-to-one matching behind them;
- :mod:`.precision_recall`: score-threshold curves and average precision;
- :mod:`.clips`: clip accuracy, top-k accuracy, multi-label F1;
- :mod:`.probes`: nearest-neighbour and linear-probe accuracy of embeddings.

These modules import numpy, pandas and scipy only: never torch, a detector, an audio file or a
dataset (a test holds them to it). Running detectors over recordings and datasets, and writing
reports, is :mod:`biomae.evaluate`'s job.
"""
