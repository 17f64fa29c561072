"""biomae.metrics stays pure: using every metric imports no torch, detector, model run, dataset,
training or evaluation-suite module, so that training can import it and nothing imports back."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = (
    "torch",
    "biomae.infer",
    "biomae.detectors",
    "biomae.datasets",
    "biomae.train",
    "biomae.evaluate",
    "biomae.audio",
    "biomae.models",
)

USE_EVERY_METRIC = """
import json, sys
import numpy as np
import pandas as pd
from biomae.metrics import clips, events, matching, precision_recall, probes

table = pd.DataFrame({"recording": ["r", "r"], "start_s": [0.0, 1.0], "end_s": [0.5, 1.5],
                      "low_hz": [100.0, 200.0], "high_hz": [900.0, 800.0], "label": ["a", "b"],
                      "score": [0.9, 0.4]})
config = events.MatchConfig(match_labels=True)
events.event_f1(table, table, config)
events.onset_offset_f1(table, table, config)
events.frame_f1(table, table, config)
precision_recall.precision_recall(table, table, config)
clips.clip_accuracy(["a", "b"], ["a", "a"])
clips.multilabel_f1([{"a"}], [{"a", "b"}])
x = np.random.default_rng(0).normal(size=(8, 3))
probes.nearest_neighbour_accuracy(x, list("aabbaabb"))
probes.linear_probe_accuracy(x, list("aabbaabb"), probes.ProbeConfig(n_folds=2))
print(json.dumps(sorted(sys.modules)))
"""


def test_using_every_metric_imports_nothing_of_torch_detectors_datasets_or_training():
    done = subprocess.run(
        [sys.executable, "-c", USE_EVERY_METRIC], capture_output=True, text=True, check=True
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "biomae.metrics.events" in loaded  # the probe ran
    leaked = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert leaked == []
