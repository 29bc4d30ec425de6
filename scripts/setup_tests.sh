#!/usr/bin/env bash
# Everything the tests need, on a fresh Debian machine: README.md's test command, which .ci/run runs as written.
#
#     scripts/setup_tests.sh [VENV] [cpu|gpu]     # default: .venv cpu
#
# 1. The servers and the browser the tests start, Debian packages (root only; otherwise it names them and goes
#    on, and the tests that need them fail): headless Chromium (tests/test_plots_offline.py), OpenSSH's server
#    (tests/sshd.py, the DVC remote), SLURM and MUNGE (tests/slurm.py, the cluster runner).
# 2. A virtual environment VENV with the project and every extra the tests import, on Paddle's CPU build (cpu)
#    or its CUDA 12 build paddlepaddle-gpu 2.6.2 (gpu, which also runs on a CPU).
set -euo pipefail
venv="${1:-.venv}"
build="${2:-cpu}"
cd "$(dirname "$0")/.."

# command that must exist -> the Debian package that provides it
declare -A packages=(
    [chromium-headless-shell]=chromium-headless-shell
    [/usr/sbin/sshd]=openssh-server
    [/usr/sbin/slurmctld]=slurmctld
    [/usr/sbin/slurmd]=slurmd
    [sbatch]=slurm-client
    [/usr/sbin/munged]=munge
)
missing=()
for command in "${!packages[@]}"; do
    if [[ $command == chromium-headless-shell ]] && command -v chromium >/dev/null; then
        continue  # the full Chromium serves as well
    fi
    command -v "$command" >/dev/null || missing+=("${packages[$command]}")
done
if (( ${#missing[@]} )); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
    else
        echo "$0: install these Debian packages (as root: apt-get install ${missing[*]}), or the tests that" \
             "start them fail" >&2
    fi
fi

case "$build" in
    cpu) extras=(-e '.[cpu,test,report,remote]') ;;
    gpu) extras=(-e '.[gpu,test,report,remote]') ;;
    *) echo "$0: build '$build' is not known; use cpu or gpu" >&2; exit 2 ;;
esac
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "${extras[@]}"
"$venv/bin/python" -c 'import numpy, paddle; print("numpy", numpy.__version__, "paddle", paddle.__version__)'
