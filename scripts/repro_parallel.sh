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
cd "$(dirname "$0")/.."
dvc repro subset
dvc stage list --name-only | sed -n 's/^train@//p' \
    | xargs -P "$jobs" -I{} dvc --wait-for-lock repro --single-item train@{} evaluate@{}
dvc repro
