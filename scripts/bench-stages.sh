#!/usr/bin/env bash
# Per-call cost of a policy stage by language, side by side in one run: each
# component is loaded by the release binary exactly as `helio start` loads it,
# then one call is evaluated 5,000 times on its warm instance (`helio plugin
# eval --repeat`). Two rows per language: a stage that allows everything
# (the language's floor: the call into the component and back) and a
# realistic policy. Build first: scripts/test.sh, or cargo build --release and
# the examples' and fixtures' builds it runs.
#   scripts/bench-stages.sh [CALLS]
set -euo pipefail
cd "$(dirname "$0")/.."
helio=target/release/helio
calls=${1:-5000}
email='{"tool": "send_email", "arguments": {"to": [{"name": "Bob", "email": "bob@example.com"}], "subject": "hello", "body": "see you"}}'
clean='{"tool": "send_email", "arguments": {"to": [{"name": "Bob"}], "subject": "hello", "body": "see you"}}'
run() { # label, component, config, call
  local out
  out=$("$helio" plugin eval "$2" --config "$3" --call "$4" --repeat "$calls" 2>/dev/null)
  printf '| %s | %s | %s | %s |\n' "$1" \
    "$(jq -r .repeated.p50_us <<<"$out")" "$(jq -r .repeated.p99_us <<<"$out")" "$(jq -r .repeated.mean_us <<<"$out")"
}
echo "| stage | p50 µs | p99 µs | mean µs |"
echo "| --- | --- | --- | --- |"
run "Rust, allow-all (0.1)" tests/plugins/target/wasm32-wasip2/release/allow_all.wasm '{}' "$clean"
run "Rust, pii-guard (SDK), clean call" examples/pii-guard/target/wasm32-wasip2/release/pii_guard.wasm '{}' "$clean"
run "Rust, pii-guard (SDK), e-mail found" examples/pii-guard/target/wasm32-wasip2/release/pii_guard.wasm '{}' "$email"
run "Python, allow-all" tests/lang-plugins/target/python_faults.wasm '{}' "$clean"
run "Python, python-stage (PII), clean call" examples/python-stage/target/python_stage.wasm '{}' "$clean"
run "Python, python-stage (PII), e-mail found" examples/python-stage/target/python_stage.wasm '{}' "$email"
run "JavaScript, allow-all" tests/lang-plugins/target/js_faults.wasm '{}' "$clean"
run "JavaScript, js-stage (business hours)" examples/js-stage/target/js_stage.wasm \
  '{"tools": ["send_*"], "days": ["sun","mon","tue","wed","thu","fri","sat"], "open": "00:00", "close": "23:59"}' "$clean"
