# biomae — the two commands a newcomer needs:  `make demo`  and  `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_CPU := torch==2.13.0

.PHONY: setup demo test test-fast bench lint clean starter-model

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Installs the CPU build of torch only when no torch is importable (a GPU user's CUDA torch is kept).
setup: $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_CPU)
	$(BIN)/python -m pip install -q -e ".[dev,tensorboard,review,onnx]"

demo: setup
	$(BIN)/biomae annotate src/biomae/data/example.flac --out demo_out --format raven,audacity,csv --plots --overwrite
	@echo; echo "== demo_out/data/example.selections.txt (Raven) =="; head -n 12 demo_out/data/example.selections.txt
	@echo; echo "== demo_out/summary.csv =="; cat demo_out/summary.csv

# One pytest worker per core, one math thread per worker (see tests/conftest.py).
test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -q

test-fast: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -q -m "not slow and not distributed"

# The class-agnostic starter detector from ../shared/data: ~45 min on 2 cores, seed 0;
# it writes models/starter/ (copy starter.safetensors and MODEL_CARD.md to src/biomae/data/ to ship).
starter-model: setup
	OMP_NUM_THREADS=1 $(BIN)/python scripts/starter_model.py --out models/starter --seed 0 --budget-min 90

lint: setup
	$(BIN)/ruff check src tests bench scripts && $(BIN)/ruff format --check src tests bench scripts

# The CPU benchmarks (bench_vs_birdnet needs bench/peers/setup_birdnet.sh first, bench_gpu_vit1b a
# GPU, bench_pretrain_vs_scratch a starter run folder: run those by hand).
CPU_BENCHES := bench_stream_memory bench_annotate bench_catalog bench_augment bench_models bench_pretrain \
	bench_review
bench: setup
	@for f in $(CPU_BENCHES); do echo "== bench/$$f.py"; $(BIN)/python bench/$$f.py || exit 1; done

clean:
	rm -rf demo_out .pytest_cache build *.egg-info
