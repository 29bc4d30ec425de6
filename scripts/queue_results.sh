#!/usr/bin/env bash
# Queues and runs the experiments behind reports/remedies.md with DVC's sweep syntax; one experiment per value,
# each rerunning only the stages it targets. The whole recipe, in order, is one command:
#
#   scripts/queue_results.sh all   # = tune, tune-120, tune-added, report, test, posthoc, ldam, test-added, report
#
# Each step queues its experiments, runs them (`dvc queue start -j 2`, one worker per core) and waits:
#   tune       validation sweeps (validation.tune=true, seeds 0 and 1) and the curriculum's schedules
#   tune-120   the post-hoc taus of the 120-epoch model `tune` trained (found in DVC's run cache)
#   tune-added validation sweeps of cRT's classifier share and of the random shifts
#   report     python scripts/remedies_report.py: collects HEAD's experiments, writes reports/chosen.yaml
#   test       test runs: what validation chose (read from reports/chosen.yaml), more seeds, the 120-epoch
#              reference, the report's protocol and the detached focal factor
#   posthoc    the post-hoc tau chosen for the 120-epoch model, on the models `test` trained
#   ldam       LDAM-DRW's collapse, settled by ablation (docs/remedies.md, "LDAM-DRW")
#   test-added cRT at both budgets, the long-tailed profile, and the random shifts with the best remedies
set -euo pipefail
cd "$(dirname "$0")/.."

# scripts/sweep.py sets QUEUE_RESULTS_QUEUE to list the experiments instead of queueing them (its shards).
queue() { ${QUEUE_RESULTS_QUEUE:-dvc exp run --queue} "$@"; }
run_queue() {  # run what is queued and wait for it; a failed experiment stops the recipe
    dvc queue start -j 2
    while [[ $(dvc queue status) =~ Queued|Running ]]; do sleep 60; done
    if [[ $(dvc queue status) =~ Failed ]]; then
        echo "$0: an experiment failed: see \`dvc queue status\` and \`dvc queue logs <name>\`" >&2
        exit 1
    fi
}
chosen() {  # CHOSEN=(-S key=value ...): what validation chose for remedy $1, from reports/chosen.yaml
    local text line
    text=$(python -c 'import sys, yaml
chosen = yaml.safe_load(open("reports/chosen.yaml"))
if sys.argv[1] not in chosen:
    sys.exit(f"reports/chosen.yaml has no {sys.argv[1]!r}: run the tune step, then scripts/remedies_report.py")
for key, value in chosen[sys.argv[1]].items():
    print(f"{key}={str(value).lower() if isinstance(value, bool) else value}")' "$1")
    CHOSEN=()
    while IFS= read -r line; do
        if [[ -n $line ]]; then CHOSEN+=(-S "$line"); fi
    done <<< "$text"
}
SEEDS5="seed=0,1,2,3,4"
BASELINE_120='+variants.baseline_120={train_set: full, loss: cross_entropy, epochs: 120}'
CRT_120='+variants.crt_120={train_set: subset, loss: crt, epochs: 120}'
# The cosine classifier alone (no margins, no DRW) on every training image: LDAM's head as a reference.
COSINE_FULL='+variants.cosine_full={train_set: full, loss: ldam_drw, epochs: 10, warmup_epochs: 1}'
POSTHOC_TAUS="evaluate.logit_adjustment_tau=0.5,1,1.5,2,3"

step() {  # queue one step's experiments, then run them and wait
    case "$1" in
    tune)
        for seed in 0 1; do
            tune=(-S validation.tune=true -S "seed=$seed")
            queue "${tune[@]}" -S 'losses.ldam_drw.scale=5,10,20,30' -S 'losses.ldam_drw.max_margin=0.25,0.5,1.0' \
                evaluate@ldam_drw
            queue "${tune[@]}" -S 'losses.logit_adjusted.tau=0.5,1,1.5,2,3' evaluate@logit_adjusted
            queue "${tune[@]}" -S 'losses.class_balanced.beta=0.9,0.99,0.999,0.9999' evaluate@class_balanced
            queue "${tune[@]}" -S 'losses.focal.gamma=0.5,1,2,3,5' evaluate@focal_fixed
            queue "${tune[@]}" -S "$POSTHOC_TAUS" evaluate@reduced  # one model, five taus
            queue "${tune[@]}" evaluate@resampled
        done
        queue -S validation.tune=true evaluate@reduced_120  # the 120-epoch model whose taus tune-120 sweeps
        # The curriculum's schedule, seed 0 (each is 120 epochs): the report's, one gamma, three gammas.
        queue -S validation.tune=true evaluate@focal
        queue -S validation.tune=true -S 'losses.focal_curriculum.gammas=[1]' -S losses.focal_curriculum.epochs_per_gamma=120 \
            evaluate@focal
        queue -S validation.tune=true -S 'losses.focal_curriculum.gammas=[0.5,1,2]' \
            -S losses.focal_curriculum.epochs_per_gamma=40 evaluate@focal
        ;;
    tune-120)
        queue -S validation.tune=true -S "$POSTHOC_TAUS" evaluate@reduced_120
        ;;
    tune-added)
        queue -S validation.tune=true -S 'seed=0,1' -S 'losses.crt.classifier_share=0.1,0.2,0.3,0.5' evaluate@crt
        queue -S validation.tune=true -S 'seed=0,1' -S 'train.augment_shift_px=1,2,3' evaluate@reduced \
            evaluate@resampled
        ;;
    ldam)
        # s 30, margin 0.5, 10 epochs, five seeds on the test set; seed 0 of the default is the committed run.
        queue -S 'seed=1,2,3,4' evaluate@ldam_drw evaluate@crt  # (b) the default: a warm-up of one epoch
        no_warmup=(-S variants.ldam_drw.warmup_epochs=0)
        queue -S "$SEEDS5" "${no_warmup[@]}" evaluate@ldam_drw  # (a) as it was, with DRW as the reference
        queue -S "$SEEDS5" "${no_warmup[@]}" -S train.grad_clip_norm=1.0 evaluate@ldam_drw  # (c) clipped
        queue -S "$SEEDS5" "${no_warmup[@]}" -S train.learning_rate=0.003 evaluate@ldam_drw  # (c) a lower rate
        queue -S "$SEEDS5" "${no_warmup[@]}" -S losses.ldam_drw.max_margin=0.0 evaluate@ldam_drw  # (d) margin 0
        queue -S "$SEEDS5" -S losses.ldam_drw.drw_start=1.0 evaluate@ldam_drw  # the margins without DRW
        # The cosine head alone (margin 0, no DRW, the same warm-up) on the subset and on every image, and the
        # cross-entropy references trained with the same warm-up: what training faster is worth by itself.
        queue -S "$SEEDS5" -S losses.ldam_drw.max_margin=0.0 -S losses.ldam_drw.drw_start=1.0 -S "$COSINE_FULL" \
            evaluate@ldam_drw evaluate@cosine_full
        queue -S "$SEEDS5" -S train.warmup_epochs=1 evaluate@baseline evaluate@reduced
        ;;
    test-added)
        # The longest first, so that both workers stay busy to the end. cRT at 120 epochs takes its 10-epoch
        # choice, on three seeds; the random shifts take the shift validation chose with re-sampling, at 120
        # epochs on three seeds with the references trained with them (about half an hour of one core each),
        # then at 10 epochs with the best remedies on five.
        chosen crt
        crt=("${CHOSEN[@]}")
        chosen resampled
        shifts=("${CHOSEN[@]}")
        queue -S 'seed=0,1,2' "${crt[@]}" -S "$CRT_120" evaluate@crt_120
        queue -S 'seed=0,1,2' "${shifts[@]}" -S "$BASELINE_120" evaluate@baseline_120 evaluate@reduced_120
        queue -S "$SEEDS5" "${shifts[@]}" evaluate@baseline evaluate@reduced evaluate@resampled evaluate@crt \
            evaluate@logit_adjusted
        queue -S "$SEEDS5" "${crt[@]}" evaluate@crt
        # The long-tailed profile (ratio 100): its own reduced reference; the full-data one is baseline.
        queue -S subset.profile=exponential -S "$SEEDS5" "${crt[@]}" evaluate@reduced evaluate@resampled \
            evaluate@logit_adjusted evaluate@crt evaluate@ldam_drw
        ;;
    report)
        python scripts/remedies_report.py
        ;;
    test)
        # What validation chose (reports/chosen.yaml); logit_adjusted's tau = 1 and the post-hoc tau = 1 of the
        # 10-epoch model were chosen too, and are the defaults: their test runs are the default variants'.
        for remedy in ldam_drw class_balanced focal_fixed; do
            chosen "$remedy"
            queue -S "$SEEDS5" "${CHOSEN[@]}" "evaluate@$remedy"
        done
        chosen focal
        queue -S 'seed=0,1,2' "${CHOSEN[@]}" evaluate@focal
        # The default variants at the 10-epoch budget (seed 0 is the committed run).
        queue -S 'seed=1,2,3,4' evaluate@baseline evaluate@reduced evaluate@focal_fixed evaluate@class_balanced \
            evaluate@logit_adjusted evaluate@ldam_drw evaluate@resampled
        queue -S 'seed=0,1,2' -S losses.focal.detach_factor=true evaluate@focal_fixed
        # The 120-epoch budget: the full-data reference, the cross-entropy control and the curriculum, whose
        # focal factor is also detached in each protocol (the report's no_grad reading; three seeds where the
        # report's 98.0% is, one on the fixed subset).
        queue -S "$BASELINE_120" -S "$SEEDS5" evaluate@baseline_120
        queue -S 'seed=1,2,3,4' evaluate@reduced_120 evaluate@focal
        queue -S losses.focal_curriculum.detach_factor=true evaluate@focal
        queue -S subset.mode=per_batch -S losses.focal_curriculum.detach_factor=true -S 'seed=0,1,2' evaluate@focal
        # The report's protocol: its reduced and focal models at five seeds (its baseline is baseline above).
        queue -S subset.mode=per_batch -S "$SEEDS5" evaluate@reduced evaluate@focal
        ;;
    posthoc)
        # Evaluate only: each run finds its seed's reduced_120 model in DVC's run cache (queued before `test` has
        # trained them, each would train its own).
        chosen "reduced_120 + post-hoc LA"
        queue -S "$SEEDS5" "${CHOSEN[@]}" evaluate@reduced_120
        ;;
    esac
    [[ $1 == report || -n ${QUEUE_RESULTS_QUEUE:-} ]] || run_queue  # listing for sweep.py: nothing to run
}

case "${1:-}" in
all) for name in tune tune-120 tune-added report test posthoc ldam test-added report; do step "$name"; done ;;
tune | tune-120 | tune-added | report | test | posthoc | ldam | test-added) step "$1" ;;
*)
    echo "usage: $0 all | tune | tune-120 | tune-added | report | test | posthoc | ldam | test-added" \
        "  (see the comment at the top)" >&2
    exit 2
    ;;
esac
