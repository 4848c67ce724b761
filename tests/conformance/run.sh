#!/usr/bin/env bash
# Runs the official MCP conformance suite's server scenarios and writes a per-scenario
# pass/fail summary. See README.md in this folder.
#
#   run.sh direct    [options]   start the fixture server, test it directly
#   run.sh --url URL [options]   test any MCP endpoint (e.g. Helio in front of the fixture)
#   run.sh serve     [PORT]      run only the fixture, in the foreground (PORT 0 = any free port);
#                                it prints "READY http://127.0.0.1:<port>/mcp" when listening
#   run.sh list                  print the server scenario names, one a line
#
# Options:
#   --out FILE          sorted "scenario: pass|fail" lines (default RESULTS/summary.txt)
#   --json FILE         JSON report with per-check counts and failure messages
#                       (default RESULTS/summary.json)
#   --results-dir DIR   where the suite's raw checks.json folders go
#                       (default results/<mode>-<timestamp> beside this script)
#   --scenario NAME     run only this scenario (repeatable; default: every server scenario)
#   --lenient           count only FAILURE checks; by default a WARNING fails a scenario too
#   --timeout SECS      upper bound for the whole suite run (default 600)
#   --next              the suite's pre-release line (0.2.x, package alias conformance-next):
#                       the scenarios MCP 2026-07-28 requires (--requirements 2026-07-28)
#
# Exit codes: 0 every scenario passed; 1 at least one failed; 2 usage or setup error.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE="$HERE/node_modules/node/bin/node"
CLI="$HERE/node_modules/@modelcontextprotocol/conformance/dist/index.js"
CLI_NEXT="$HERE/node_modules/conformance-next/dist/index.js"

die() { echo "run.sh: $*" >&2; exit 2; }
usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

ensure_deps() {
  if [[ -x "$NODE" && -f "$CLI" && -f "$CLI_NEXT" && -f "$HERE/node_modules/@modelcontextprotocol/sdk/package.json" ]] \
      && "$NODE" --version >/dev/null 2>&1; then
    return
  fi
  command -v npm >/dev/null 2>&1 || die "npm is needed to install the conformance dependencies"
  echo "run.sh: installing dependencies (npm ci) in $HERE" >&2
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed"
  [[ -x "$NODE" && -f "$CLI" ]] || die "npm ci did not provide $NODE and $CLI"
}

list_scenarios() {
  # Lines look like "  - server-initialize [2025-06-18,2025-11-25]".
  "$NODE" "$CLI" list --server | sed -n 's/^  - \([^ ]*\).*$/\1/p'
}

MODE=""
URL=""
OUT=""
JSON=""
RESULTS=""
LENIENT=""
TIMEOUT=600
NEXT=""
SCENARIOS=()

[[ $# -gt 0 ]] || usage
case "$1" in
  direct) MODE=direct; shift ;;
  serve)
    shift
    ensure_deps
    cd "$HERE"
    exec "$NODE" everything-server.mjs "${1:-${PORT:-0}}"
    ;;
  list) ensure_deps; list_scenarios; exit 0 ;;
  -h|--help|help) usage ;;
esac

while [[ $# -gt 0 ]]; do
  case "$1" in
    --url) [[ $# -ge 2 ]] || usage; URL="$2"; MODE="${MODE:-url}"; shift 2 ;;
    --url=*) URL="${1#--url=}"; MODE="${MODE:-url}"; shift ;;
    --out) [[ $# -ge 2 ]] || usage; OUT="$2"; shift 2 ;;
    --json) [[ $# -ge 2 ]] || usage; JSON="$2"; shift 2 ;;
    --results-dir) [[ $# -ge 2 ]] || usage; RESULTS="$2"; shift 2 ;;
    --scenario) [[ $# -ge 2 ]] || usage; SCENARIOS+=("$2"); shift 2 ;;
    --lenient) LENIENT=--lenient; shift ;;
    --timeout) [[ $# -ge 2 ]] || usage; TIMEOUT="$2"; shift 2 ;;
    --next) NEXT=1; shift ;;
    *) echo "run.sh: unknown argument: $1" >&2; usage ;;
  esac
done

[[ -n "$MODE" ]] || usage
if [[ "$MODE" == direct && -n "$URL" ]]; then die "give either 'direct' or '--url URL', not both"; fi
[[ "$MODE" == direct || -n "$URL" ]] || usage
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout wants whole seconds"

ensure_deps

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="${RESULTS:-$HERE/results/$MODE-$STAMP-$$}"
mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
OUT="${OUT:-$RESULTS/summary.txt}"
JSON="${JSON:-$RESULTS/summary.json}"

ALL_SCENARIOS="$(list_scenarios)"
[[ -n "$ALL_SCENARIOS" ]] || die "could not list the suite's server scenarios"
if [[ ${#SCENARIOS[@]} -gt 0 ]]; then
  for s in "${SCENARIOS[@]}"; do
    grep -qxF -- "$s" <<<"$ALL_SCENARIOS" || die "unknown scenario: $s (see: run.sh list)"
  done
fi

FIXTURE_PID=""
cleanup() {
  if [[ -n "$FIXTURE_PID" ]] && kill -0 "$FIXTURE_PID" 2>/dev/null; then
    kill "$FIXTURE_PID" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$FIXTURE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$FIXTURE_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ "$MODE" == direct ]]; then
  FIXTURE_LOG="$RESULTS/fixture.log"
  (cd "$HERE" && exec "$NODE" everything-server.mjs 0) >"$FIXTURE_LOG" 2>&1 &
  FIXTURE_PID=$!
  for _ in $(seq 1 200); do
    URL="$(sed -n 's/^READY \(http[^ ]*\).*$/\1/p' "$FIXTURE_LOG" | head -n1)"
    [[ -n "$URL" ]] && break
    kill -0 "$FIXTURE_PID" 2>/dev/null || { cat "$FIXTURE_LOG" >&2; die "the fixture server exited early"; }
    sleep 0.1
  done
  [[ -n "$URL" ]] || { cat "$FIXTURE_LOG" >&2; die "the fixture server did not print READY within 20 s"; }
  echo "run.sh: fixture listening at $URL (pid $FIXTURE_PID, log $FIXTURE_LOG)" >&2
fi

echo "run.sh: running conformance server scenarios against $URL" >&2
SUITE_LOG="$RESULTS/suite.log"
start=$(date +%s)
set +e
if [[ -n "$NEXT" ]]; then
  # The scenarios the revision requires, as the suite freezes them; the list comes
  # from what ran (one result folder per scenario).
  timeout --kill-after=10 "$TIMEOUT" "$NODE" "$CLI_NEXT" server --url "$URL" --requirements 2026-07-28 -o "$RESULTS" >"$SUITE_LOG" 2>&1
  suite_rc=$?
  RUN_LIST="$(ls "$RESULTS" | sed -n 's/^server-\(.*\)-[0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}T.*$/\1/p' | sort -u)"
elif [[ ${#SCENARIOS[@]} -eq 0 ]]; then
  RUN_LIST="$ALL_SCENARIOS"
  timeout --kill-after=10 "$TIMEOUT" "$NODE" "$CLI" server --url "$URL" --suite all -o "$RESULTS" >"$SUITE_LOG" 2>&1
  suite_rc=$?
else
  RUN_LIST="$(printf '%s\n' "${SCENARIOS[@]}")"
  suite_rc=0
  : >"$SUITE_LOG"
  for s in "${SCENARIOS[@]}"; do
    timeout --kill-after=10 "$TIMEOUT" "$NODE" "$CLI" server --url "$URL" --scenario "$s" -o "$RESULTS" >>"$SUITE_LOG" 2>&1
    rc=$?; [[ $rc -eq 0 ]] || suite_rc=$rc
  done
fi
set -e
end=$(date +%s)
# The CLI exits 1 when a check failed; 124/137 mean the timeout hit. Scenarios without
# results are reported as failures by summarize.mjs either way.
if [[ $suite_rc -eq 124 || $suite_rc -eq 137 ]]; then
  echo "run.sh: the suite did not finish within ${TIMEOUT}s (see $SUITE_LOG)" >&2
fi
echo "run.sh: suite finished in $((end - start))s with exit code $suite_rc (log $SUITE_LOG)" >&2

set +e
"$NODE" "$HERE/summarize.mjs" --results "$RESULTS" --scenarios "$(tr '\n' ' ' <<<"$RUN_LIST")" \
  --url "$URL" --out "$OUT" --json "$JSON" $LENIENT
rc=$?
set -e
echo "run.sh: summary in $OUT and $JSON" >&2
[[ $rc -le 1 ]] || exit 2
exit $rc
