#!/usr/bin/env bash
# Runs every test Helio has, installing what it needs on the way:
# formatting and lint gates, Rust unit tests, then the end-to-end suites
# (Python MCP SDK clients and servers in target/py-venv, the official MCP
# conformance suite from npm) against the real `helio` binary.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test (unit tests)"
cargo test --locked

step "cargo build (the binary the end-to-end tests run)"
cargo build --locked -p helio --bin helio

step "end-to-end tests (pytest, official MCP SDKs, conformance suite)"
HELIO_BIN="$PWD/target/debug/helio" tests/e2e/run.sh -q

step "all tests passed"
