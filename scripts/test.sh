#!/usr/bin/env bash
# Runs every test Helio has, installing what it needs on the way: the
# wasm32-wasip2 target (policy stages are WebAssembly components), the
# formatting and lint gates, Rust unit tests of the host and of the
# components, then the end-to-end suites (Python MCP SDK clients and servers
# in target/py-venv, the official MCP conformance suite from npm) against the
# real `helio` binary.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

# Component workspaces outside the main one: the built-ins (embedded by
# host/build.rs), the example plugins and router, and the end-to-end test
# fixtures.
COMPONENTS=(plugins examples/card-guard examples/finance-router examples/pii-guard examples/spend-extractor tests/plugins)

step "rustup target add wasm32-wasip2"
rustup target add wasm32-wasip2

step "cargo fmt --check"
cargo fmt --all -- --check
for ws in "${COMPONENTS[@]}"; do
  cargo fmt --manifest-path "$ws/Cargo.toml" --all -- --check
done

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --locked --all-targets -- -D warnings
for ws in "${COMPONENTS[@]}"; do
  cargo clippy --locked --manifest-path "$ws/Cargo.toml" --target-dir target/components --all-targets -- -D warnings
done

step "cargo test (unit tests: host, then component logic natively)"
cargo test --locked
for ws in "${COMPONENTS[@]}"; do
  cargo test --locked --manifest-path "$ws/Cargo.toml" --target-dir target/components
done

step "build the test and example components (wasm32-wasip2)"
# One target directory for all of them, so wit-bindgen, serde and the rest
# compile once; each component is then put where a build in its own
# directory leaves it (the examples' helio.yaml and the tests read it there).
shared=target/components/wasm32-wasip2/release
for ws in examples/card-guard examples/finance-router examples/pii-guard examples/spend-extractor tests/plugins; do
  cargo build --locked --release --target wasm32-wasip2 --manifest-path "$ws/Cargo.toml" --target-dir target/components
  mkdir -p "$ws/target/wasm32-wasip2/release"
  for lib in $(cargo metadata --locked --no-deps --format-version 1 --manifest-path "$ws/Cargo.toml" \
      | python3 -c 'import json, sys; print(" ".join(t["name"].replace("-", "_") for p in json.load(sys.stdin)["packages"] for t in p["targets"] if "cdylib" in t["kind"]))'); do
    cp "$shared/$lib.wasm" "$ws/target/wasm32-wasip2/release/"
  done
done

step "Python and JavaScript stages: their unit tests, then their components (componentize-py from PyPI, componentize-js from npm)"
examples/python-stage/build.sh
(cd examples/js-stage && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run build)
tests/lang-plugins/build.sh

step "cargo build (the binary the end-to-end tests run)"
cargo build --locked -p helio --bin helio

# The dashboard's browser tests drive Debian's Chromium through its
# ChromeDriver (Selenium, pointed at both; nothing downloads a browser).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  step "apt-get install chromium chromium-driver (the dashboard's browser tests)"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q chromium chromium-driver \
    || { $sudo apt-get update -q && $sudo apt-get install -y -q chromium chromium-driver; }
fi

# The container image is built from scratch with buildah and run with podman
# (no registry, no Docker engine here), from a static musl binary.
image_tools=(podman buildah runc musl-gcc)
missing=()
for tool in "${image_tools[@]}"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ]; then
  step "apt-get install podman buildah runc musl-tools (the container image test)"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q podman buildah runc musl-tools \
    || { $sudo apt-get update -q && $sudo apt-get install -y -q podman buildah runc musl-tools; }
fi
step "container image (static musl binary, FROM scratch, scripts/image.sh)"
rustup target add x86_64-unknown-linux-musl
scripts/image.sh localhost/helio:test

step "end-to-end tests (pytest, official MCP SDKs, conformance suite, dashboard in Chromium, the image in podman)"
HELIO_IMAGE=localhost/helio:test HELIO_BIN="$PWD/target/debug/helio" tests/e2e/run.sh -q

step "Python SDK: its tests against the real binary, and a clean install of its wheel and sdist"
HELIO_BIN="$PWD/target/debug/helio" target/py-venv/bin/python -m pytest python-sdk/tests -q -p no:cacheprovider
for artifact in target/python-sdk-dist/helio_sdk-*.whl target/python-sdk-dist/helio_sdk-*.tar.gz; do
  fresh=target/sdk-install-check
  rm -rf "$fresh"
  python3 -m venv "$fresh"
  "$fresh/bin/pip" install --quiet --disable-pip-version-check "$artifact"
  "$fresh/bin/python" -c 'import helio; from helio import AsyncHelioClient, HelioContext; print("installed", helio.__version__, "from", "'"$artifact"'")'
  rm -rf "$fresh"
done

step "all tests passed"
