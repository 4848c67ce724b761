#!/usr/bin/env bash
# Proxy cost per call by rule count: the side-by-side harness
# (../shared/bench) runs Helio with policies of 10, 100, 1,000 and 10,000
# rules, a direct call to the same upstream in the same run, and prints one
# table by rule count. The 10-rule policy is the harness's "governed" config;
# the larger ones put generated rules in front of its ten (mostly distinct
# exact tool names, some globs with input or annotation conditions, a few
# rate limits and approvals), so the benchmarked call (`echo`) is still
# allowed by the last rule: an engine that walks every rule pays for all of
# them. Configure time, two ways: `helio validate` on the same file (read
# and check it, load the stages from the disk cache, run their `configure`:
# read it against the 10-rule row), and the rules engine's own, natively
# (the working tree's plugins/, `cargo test --release`; NATIVE=0 skips it).
#
#   scripts/bench-rules.sh [NAME=BINARY ...] [driver options]
#
# Binaries default to rules=target/release/helio (cargo build --release
# first); give several (before=/tmp/helio-old after=target/release/helio) to
# compare them in one run, interleaved. Driver options (../shared/bench
# /bench_driver.py --help) follow the defaults below, so a later one wins:
#   scripts/bench-rules.sh --reps 1 -d 4 --seq 1500
# RULE_COUNTS="10 1000" narrows the policies; BENCH_DIR points elsewhere
# than ../shared/bench. Results go to a temporary directory, removed at the
# end (KEEP=1 keeps it and says where).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bench=${BENCH_DIR:-$root/../shared/bench}
counts=${RULE_COUNTS:-10 100 1000 10000}
[ -f "$bench/bench_driver.py" ] || { echo "bench-rules.sh: no harness at $bench (set BENCH_DIR)" >&2; exit 2; }

binaries=()
driver=()
for arg in "$@"; do
  if [[ "$arg" != -* && "$arg" == *=* && ${#driver[@]} -eq 0 ]]; then
    name=${arg%%=*} path=${arg#*=}
    binaries+=("$name=$(cd "$(dirname "$path")" && pwd)/$(basename "$path")")
  else
    driver+=("$arg")
  fi
done
[ ${#binaries[@]} -gt 0 ] || binaries=("rules=$root/target/release/helio")
for b in "${binaries[@]}"; do
  [ -x "${b#*=}" ] || { echo "bench-rules.sh: ${b#*=} is not an executable (cargo build --release)" >&2; exit 2; }
done

work=$(mktemp -d)
if [ "${KEEP:-}" = 1 ]; then
  echo "bench-rules.sh: keeping $work" >&2
else
  trap 'rm -rf "$work"' EXIT
fi

# The policies: one template per rule count, in the harness's format.
python3 - "$bench/configs/helio.yaml" "$work" $counts <<'PY'
import sys

template, out, counts = sys.argv[1], sys.argv[2], [int(c) for c in sys.argv[3:]]
text = open(template).read()
anchor = "  rules:\n"
assert text.count(anchor) == 1, "the governed config's rules: block moved"
governed = text.split(anchor)[1].count("    - name:")
verbs = ["get", "list", "update", "create", "archive", "export", "sync"]


def rule(i):
    """Rule i of the generated ones: none matches the `echo` call."""
    kind = i % 20
    name = f"gen-{i:05d}"
    tool = f"app{i:05d}_{verbs[i % len(verbs)]}"
    if kind < 14:
        action = ["deny", "allow", "dry_run"][i % 3]
        lines = [f"    - name: {name}", "      match:", f"        tool: '{tool}'"]
        if i % 3 == 0:
            lines += ["        input:", "          '$.amount':", f"            gt: {i}"]
        return lines + [f"      action: {action}"]
    if kind == 14:
        return [f"    - name: {name}", "      match:", f"        tool: '{tool}'",
                "      action: rate_limit", "      limits:", "        max_calls: 10000000",
                "        window: '1h'", "        key: session"]
    if kind == 15:
        return [f"    - name: {name}", "      match:", f"        tool: '{tool}'",
                "      action: require_approval", "      approval:",
                "        channel: dashboard", "        timeout: '60s'"]
    if kind in (16, 17):
        return [f"    - name: {name}", "      match:", f"        tool: 'svc{i:05d}_*'",
                "        input:", "          '$.target':", "            regex: '^admin_'",
                "      action: deny"]
    if kind == 18:
        return [f"    - name: {name}", "      match:", f"        tool: '{{crm,erp}}{i:05d}.*'",
                "        annotations:", "          destructiveHint: true",
                "      action: require_approval"]
    return [f"    - name: {name}", "      match:", f"        tool: '*_{i:05d}'",
            "        annotations:", "          readOnlyHint: true", "      action: allow"]


for n in counts:
    extra = max(n - governed, 0)
    generated = "".join("\n".join(rule(i)) + "\n" for i in range(extra))
    head, tail = text.split(anchor)
    with open(f"{out}/rules-{n}.yaml", "w") as f:
        f.write(head + anchor + generated + tail)
PY

# Configure time: `helio validate` on each policy, the median of three.
cfgs=()
for n in $counts; do
  sed -e "s#@@UPSTREAM_URL@@#http://127.0.0.1:9/mcp#" -e "s#@@PROXY_PORT@@#28081#" \
      -e "s#@@DASH_PORT@@#28082#" -e "s#@@AUDIT_DB@@#$work/validate.db#" \
      "$work/rules-$n.yaml" >"$work/validate-$n.yaml"
  cfgs+=(--config "r$n=$work/rules-$n.yaml")
done
for b in "${binaries[@]}"; do
  name=${b%%=*} bin=${b#*=}
  "$bin" validate -c "$work/validate-10.yaml" 2>/dev/null || true # warms the component cache
  for n in $counts; do
    ms=()
    for _ in 1 2 3; do
      start=$(date +%s%N)
      "$bin" validate -c "$work/validate-$n.yaml" 2>"$work/validate.log" \
        || { cat "$work/validate.log" >&2; exit 1; }
      ms+=($(( ($(date +%s%N) - start) / 1000000 )))
    done
    printf '%s\n' "${ms[@]}" | sort -n | sed -n 2p >"$work/validate-$name-$n.ms"
  done
done

if [ "${NATIVE:-1}" != 0 ]; then
  cargo test --release --locked -q --manifest-path plugins/Cargo.toml --target-dir target/components \
    -p helio-rules scaling -- --ignored --nocapture 2>"$work/native.out" >/dev/null \
    || { cat "$work/native.out" >&2; exit 1; }
fi

targets=()
for b in "${binaries[@]}"; do
  targets+=("${b%%=*}=${b#*=} start -c {config}")
done
configs=$(for n in $counts; do printf 'r%s,' "$n"; done)
"$bench/run_compare.sh" --reps 1 --startup-reps 1 --settle 1 --conc 64 --seq 2000 -d 6 \
  "${driver[@]}" "${cfgs[@]}" --configs "${configs%,}" --out "$work/results" "${targets[@]}" \
  >"$work/driver.out"

python3 - "$work" "${binaries[@]%%=*}" <<'PY'
import json
import statistics
import sys

work, names = sys.argv[1], sys.argv[2:]
results = json.load(open(f"{work}/results/results.json"))
runs, startup = results["runs"], results["startup"]
counts = [int(c[1:]) for c in results["configs"]]


def phase(reps, ph, metric):
    values = [r["phases"][ph].get(metric) for r in reps if ph in r["phases"]]
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    return "-" if v is None else f"{v:,.{digits}f}"


p = results["params"]
print(f"\nProxy cost by rule count ({p['reps']} rep(s), seq {p['seq']} calls, "
      f"c64 for {p['duration']} s; the call is allowed by the last rule)\n")
print("| rules | binary | CPU µs/call seq | CPU µs/call c64 | seq p50 ms (direct) "
      "| c64 req/s (direct) | start to ready ms | validate ms |")
print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
direct = runs.get("direct", [])
d_p50, d_rps = phase(direct, "seq", "p50_ms"), phase(direct, "c64", "rps")
for n in counts:
    for name in names:
        reps = runs.get(f"{name}/r{n}", [])
        ready = [s["ready_ms"] for s in startup.get(f"{name}/r{n}", [])]
        ready += [r["ready_ms"] for r in reps if r.get("ready_ms") is not None]
        try:
            validate = int(open(f"{work}/validate-{name}-{n}.ms").read())
        except (OSError, ValueError):
            validate = None
        print(f"| {n:,} | {name} | {fmt(phase(reps, 'seq', 'proxy_cpu_us_per_call'))} "
              f"| {fmt(phase(reps, 'c64', 'proxy_cpu_us_per_call'))} "
              f"| {fmt(phase(reps, 'seq', 'p50_ms'), 3)} ({fmt(d_p50, 3)}) "
              f"| {fmt(phase(reps, 'c64', 'rps'))} ({fmt(d_rps)}) "
              f"| {fmt(statistics.median(ready) if ready else None)} | {fmt(validate)} |")
try:
    native = [l for l in open(f"{work}/native.out") if l.startswith("|")]
except OSError:
    native = []
if native:
    print("\nThe rules engine alone, native (this working tree's plugins/, "
          "`cargo test --release -p helio-rules scaling`):\n")
    print("".join(native), end="")
errors = {k: sum(ph.get("error", 0) for r in v for ph in r["phases"].values()) for k, v in runs.items()}
if any(errors.values()):
    print(f"\nerrors: {errors}")
PY
