"""Review the detections of a ``biomae annotate`` folder in the browser (``biomae review OUT``).

:mod:`.store` holds the decisions (``OUT/review.csv``), :mod:`.results` the summary, the re-export
and the recordings fine-tuning uses, :mod:`.media` the spectrograms and clips, :mod:`.server` the
web app (needs the ``review`` extra: ``pip install biomae[review]``).
"""
