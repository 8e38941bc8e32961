#!/usr/bin/env bash
# Benchmark: wall time of the first lab converge (fresh hosts, warm bundle) and of the second
# (idempotent: the operator's drift check) one, over SSH as production runs, and their ratio.
# Prints numbers only; nothing here asserts on time. The second run must report changed=0.
#   bench/lab_converge.sh [--keep]     (--keep leaves the lab running afterwards)
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."
keep=${1:-}
log=$(mktemp -d)
bin/lab down >/dev/null 2>&1 || true
t0=$(date +%s.%N)
bin/lab create >/dev/null
t1=$(date +%s.%N)
bin/lab converge >"$log/first.log" 2>&1 || { tail -n 40 "$log/first.log"; echo "first converge failed (log: $log/first.log)"; exit 1; }
t2=$(date +%s.%N)
bin/lab converge >"$log/second.log" 2>&1 || { tail -n 40 "$log/second.log"; echo "second converge failed (log: $log/second.log)"; exit 1; }
t3=$(date +%s.%N)
[ "$keep" = --keep ] || bin/lab down >/dev/null
echo "== PLAY RECAP of the second converge =="
sed -n '/PLAY RECAP/,/^$/p' "$log/second.log"
changed=$(sed -n '/PLAY RECAP/,/^$/p' "$log/second.log" | grep -Eo 'changed=[0-9]+' | grep -vc 'changed=0' || true)
printf '\n%-40s %8.1f s\n' "create lab hosts" "$(echo "$t1 - $t0" | bc)"
printf '%-40s %8.1f s\n' "first converge (site.yml)" "$(echo "$t2 - $t1" | bc)"
printf '%-40s %8.1f s\n' "second converge (idempotent)" "$(echo "$t3 - $t2" | bc)"
printf '%-40s %8.1f\n' "ratio first / second" "$(echo "($t2 - $t1) / ($t3 - $t2)" | bc -l)"
printf '%-40s %8s\n' "tasks run by the second converge" "$(grep -c '^TASK \[' "$log/second.log")"
echo "hosts with changes on the second run: $changed (logs: $log)"
[ "$changed" = 0 ]
