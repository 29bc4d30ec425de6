#!/usr/bin/env bash
# `dvc repro` of the whole pipeline with N stages at once (default 2, one per core):
#     scripts/repro_parallel.sh [N]
#
# The variants' train@/evaluate@ stages are independent of each other. Their common upstream stages run
# first; then N `dvc repro --single-item train@<variant> evaluate@<variant>` run side by side, each rerunning
# only what is stale. --single-item keeps each one from re-checking download and subset, which would want a
# write lock on outputs that the others are reading. DVC takes its repository lock only around a stage's
# start and end; --wait-for-lock makes the invocations queue for it instead of failing. A last plain
# `dvc repro` finds nothing left to do, or runs what is (a stage added to dvc.yaml outside the variants).
set -euo pipefail
jobs="${1:-2}"
attempts=5
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

reproduce() {
    dvc repro subset &&
    dvc stage list --name-only | sed -n 's/^train@//p' \
        | xargs -P "$jobs" -I{} dvc --wait-for-lock repro --single-item train@{} evaluate@{} &&
    dvc repro
}

# True when the log names lock holders and every one has exited (gone, or a zombie not yet reaped).
holders_gone() {
    local pids pid
    pids="$(sed -n 's/^ *(PID \([0-9]*\)):.*/\1/p' "$log")"
    [[ -n "$pids" ]] || return 1
    for pid in $pids; do
        if [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" =~ ^[^Z] ]]; then return 1; fi
    done
}

# Started again at once after its process group was killed, a run can find DVC's read/write lock
# (.dvc/tmp/rwlock) still naming a worker of the killed run: DVC drops holders that no longer exist, but one
# not yet reaped still exists, and --wait-for-lock waits for the repository lock only. The stage then fails
# "... is busy, it is being blocked by: (PID N) ...". Such a holder is gone within a second or two: retry.
for ((attempt = 1; attempt <= attempts; attempt++)); do
    reproduce 2>&1 | tee "$log" && exit 0
    status=$?
    grep -q "is busy, it is being blocked by" "$log" || exit "$status"
    sleep "$attempt"  # the seconds a killed process takes to be reaped
    holders_gone || exit "$status"
    echo "repro_parallel.sh: DVC's lock named processes of a killed run; trying again ($attempt of $attempts)" >&2
done
echo "repro_parallel.sh: DVC's lock still names processes of a killed run after $attempts tries;" \
     "run scripts/repro_parallel.sh again" >&2
exit 1
