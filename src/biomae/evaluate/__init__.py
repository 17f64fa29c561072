"""Evaluation that reads files and runs detectors, on top of the pure :mod:`biomae.metrics`.

- :mod:`.tables`: read prediction and reference tables and pair them by recording
  (``biomae evaluate --pred --ref``);
- :mod:`.report`: score paired tables and write the report (CSV, JSON, curves);
- :mod:`.benchmarks`: the ``dev`` and ``synth`` suites (``biomae evaluate --model --suite``), with
  :mod:`.seed_suite` and :mod:`.embedding_suite`.
"""
