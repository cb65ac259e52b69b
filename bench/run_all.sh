#!/usr/bin/env bash
# Every workload, one after the other, each on a fresh stack; then one table.
#   bash bench/run_all.sh            # the full workloads (about 10-25 minutes on a quiet machine)
#   bash bench/run_all.sh --smoke    # the short versions (a few minutes)
# Extra arguments go to every bench.run call. JSON summaries land in var/bench/all-<time>/.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT="var/bench/all-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
status=0
run() {
    local name=$1
    shift
    echo "== $name $*" >&2
    "$PY" -m bench.run "$@" --out "$OUT/$name.json" >/dev/null || status=1
}
run quota-rush-8 quota-rush --clients 8 "$@"
run quota-rush-32 quota-rush --clients 32 "$@"
run quota-rush-64 quota-rush --clients 64 "$@"
run many-events-64 many-events --clients 64 "$@"
run seat-rush-200 seat-rush "$@"
"$PY" -m bench.report "$OUT"/*.json
exit $status
