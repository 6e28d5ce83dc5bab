#!/usr/bin/env bash
# Quick start, command 2: set everything up, then run the whole test suite (formatting, lints,
# unit and black-box tests against the real model, real ONNX Runtime and the Python reference).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all --check
cargo clippy --all-targets --locked -q -- -D warnings
cargo test --workspace --locked
