"""Evaluation: score predictions against references, and probe embeddings.

- :mod:`.metrics`: event F1 (one-to-one IoU matching), onset/offset-tolerance F1, frame F1,
  annotated regions; :mod:`.matching` is its matching engine.
- :mod:`.precision_recall`: precision-recall curves, AP and mAP of scored predictions.
- :mod:`.clips`: clip accuracy, top-k accuracy, label-set (multi-label) F1.
- :mod:`.probes`: 1-NN and linear-probe accuracy of embeddings; the log-mel statistics baseline.
- :mod:`.tables` and :mod:`.report`: read, pair, score and write tables (``biomae evaluate``).

Nothing is imported here, so that ``import biomae.evaluate`` stays light.
"""
