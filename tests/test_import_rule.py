"""The import rules: running a model never imports training — annotating, scoring, embedding, the
detectors, model files, the front end and devices load without a single ``biomae.train`` module —
and the ONNX Runtime path never imports torch (only the torch runtime, ``biomae.torch_scorer``,
the front end and the model files do)."""

from __future__ import annotations

import subprocess
import sys

import pytest

RUNTIME_MODULES = [
    "biomae.infer",
    "biomae.onnx_scorer",
    "biomae.torch_scorer",
    "biomae.embed",
    "biomae.detectors",
    "biomae.detectors.model",
    "biomae.detectors.auto",
    "biomae.models.files",
    "biomae.features",
    "biomae.devices",
]


@pytest.mark.parametrize("module", RUNTIME_MODULES)
def test_running_a_model_imports_nothing_from_train(module):
    code = (
        f"import sys, {module}\n"
        "print(sorted(m for m in sys.modules if m.startswith('biomae.train')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{module} imports {out.stdout.strip()}"


def test_annotating_with_a_model_imports_nothing_from_train(tiny_detect_model, example_path):
    """Loading a fine-tuned model and annotating a recording stays out of biomae.train."""
    code = (
        "import sys\n"
        "from biomae.detectors import make_detector\n"
        f"detector = make_detector('model', {str(tiny_detect_model)!r},"
        " model_options={'bf16': False, 'device': 'cpu'})\n"
        f"detector.detect_file({str(example_path)!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('biomae.train')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_command_line_imports_no_training_to_annotate():
    code = (
        "import sys; from biomae.cli import build_parser; build_parser(); "
        "import biomae.commands.annotate, biomae.detectors.model; "
        "print(sorted(m for m in sys.modules if m.startswith('biomae.train')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_building_the_command_line_imports_no_heavy_library():
    """``biomae --help`` stays quick: building the parser imports neither torch nor matplotlib,
    duckdb or pandas (each command imports what it needs when it runs)."""
    code = (
        "import sys, biomae.cli; biomae.cli.build_parser(); "
        "heavy = ('torch', 'matplotlib', 'duckdb', 'pandas'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# What annotating and embedding on ONNX Runtime (or with the energy detector) import.
TORCH_FREE_MODULES = [
    "biomae.cli",
    "biomae.commands.annotate",
    "biomae.commands.embed",
    "biomae.annotate",
    "biomae.infer",
    "biomae.onnx_scorer",
    "biomae.embed",
    "biomae.detectors",
    "biomae.detectors.model",
    "biomae.detectors.auto",
    "biomae.detectors.energy",
    "biomae.spectral",
    "biomae.devices",
    "biomae.decode",
    "biomae.live",
    "biomae.viz",
]


def test_the_onnx_runtime_path_imports_no_torch():
    code = (
        f"import sys, importlib; [importlib.import_module(m) for m in {TORCH_FREE_MODULES!r}]; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
