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

# "(PID N): command" for each live DVC process whose working directory is in this repository, found with psutil
# (a dependency of dvc) by dvc's own interpreter.
dvc_here() {
    "$(sed -n '1s/^#! *//p' "$(command -v dvc)")" - "$PWD" <<'EOF'
import os
import sys

import psutil

root = sys.argv[1]
for process in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
    words, cwd = process.info["cmdline"] or [], process.info["cwd"] or ""
    if process.info["status"] != psutil.STATUS_ZOMBIE and "dvc" in map(os.path.basename, words[:3]) \
            and f"{cwd}/".startswith(f"{root}/"):
        print(f"(PID {process.pid}): {' '.join(words)}")
EOF
}

# Two leftovers of a killed run, when the run is started again at once:
# - DVC's read/write lock (.dvc/tmp/rwlock) still names a worker of the killed run. DVC drops holders that no
#   longer exist, but one not yet reaped still exists, and --wait-for-lock waits for the repository lock only.
#   The stage fails "... is busy, it is being blocked by: (PID N) ...". Such a holder is gone within a second
#   or two: retry.
# - The lock file is cut short: DVC rewrites it in place, and a kill in the middle of that write leaves every
#   later DVC command failing "Unable to read RWLock-file" (treeverse/dvc#7615). It holds the locks of running
#   DVC processes only: once none works in this repository, removing it loses nothing.
# - dvc.lock is cut short: DVC rewrites it in place too. Cut at a line DVC can still read, the stages it lost
#   just run again (restored from DVC's run cache); cut elsewhere, DVC stops: "'./dvc.lock' is invalid" or
#   "validation failed". Once no DVC process works here, the committed dvc.lock takes its place (the cut one
#   is kept in .dvc/tmp), and the run cache brings back every stage already run.
others=""
for ((attempt = 1; attempt <= attempts; attempt++)); do
    reproduce 2>&1 | tee "$log" && exit 0
    status=$?
    if grep -q "is busy, it is being blocked by" "$log"; then
        sleep "$attempt"  # the seconds a killed process takes to be reaped
        holders_gone || exit "$status"
        echo "repro_parallel.sh: DVC's lock named processes of a killed run; trying again ($attempt of $attempts)" >&2
    elif grep -q "Unable to read RWLock-file" "$log"; then
        sleep "$attempt"
        others="$(dvc_here)"
        [[ -z "$others" ]] || continue
        echo "repro_parallel.sh: DVC's lock file .dvc/tmp/rwlock was cut short by a killed run (treeverse/dvc#7615)" \
             "and no DVC process works in this repository: removed it; trying again ($attempt of $attempts)" >&2
        rm -f .dvc/tmp/rwlock
    elif grep -Eq "'\./dvc\.lock' (is invalid|validation failed)" "$log"; then
        sleep "$attempt"
        others="$(dvc_here)"
        [[ -z "$others" ]] || continue
        mv dvc.lock .dvc/tmp/dvc.lock.cut-short
        if git show HEAD:dvc.lock > .dvc/tmp/dvc.lock.committed 2>/dev/null; then
            mv .dvc/tmp/dvc.lock.committed dvc.lock
        else  # never committed: DVC writes a new one
            rm -f .dvc/tmp/dvc.lock.committed
        fi
        echo "repro_parallel.sh: dvc.lock was cut short by a killed run (kept in .dvc/tmp/dvc.lock.cut-short) and" \
             "no DVC process works in this repository: the committed one takes its place; trying again" \
             "($attempt of $attempts)" >&2
    else
        exit "$status"
    fi
done
if [[ -n "$others" ]]; then
    printf '%s\n' "repro_parallel.sh: a file of DVC's is cut short, and these DVC processes work in this repository:" \
        "$others" "Once they have ended, run scripts/repro_parallel.sh again: it repairs the file then." >&2
else
    echo "repro_parallel.sh: DVC's lock still names processes of a killed run after $attempts tries;" \
         "run scripts/repro_parallel.sh again" >&2
fi
exit 1
