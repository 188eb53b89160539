#!/usr/bin/env bash
# The GPU check on a lent GPU machine, which has no network and no jsonargparse or optuna: installs the wheels that
# `make gpu-bundle` put in a folder (the project and what that machine lacks) into a folder of their own, next to
# the machine's preinstalled torch, checks them, then runs `python3 -m benchmarks.gpu_check`, all within 8 minutes.
#
#   bash benchmarks/run_gpu_check.sh                            # the bundle at build/gpu-bundle, the full check
#   bash benchmarks/run_gpu_check.sh build/gpu-bundle --smoke   # every cell on the CPU (options go to gpu_check)
#
# Results land where gpu_check writes them (benchmarks/results/gpu-<device>.{json,md}); with $OUT set, those of
# this run and the log are also put in $OUT. Uses the `python3` found on PATH.
set -euo pipefail

LIMIT_S=${GPU_CHECK_LIMIT_S:-470}  # the whole script, install included: under the 8 minutes promised
SITE=/tmp/site                     # where the wheels go; PYTHONPATH puts it before the machine's own packages
bundle=build/gpu-bundle               # relative to the repository root, the folder this script works in
if [[ $# -gt 0 && $1 != -* ]]; then  # a first argument that is no option is the bundle's folder
    bundle=$(realpath "$1")          # given from wherever the caller stands
    shift
fi
cd "$(dirname "$0")/.."
mkdir -p build ${OUT:+"$OUT"}
log=${OUT:-build}/gpu-check.log  # written straight into $OUT: a run killed from outside still leaves its log
stamp=$(mktemp)                  # results newer than this are this run's
trap 'rm -f "$stamp"' EXIT

# The wheels, never from an index and without their dependencies: torch and the rest are the machine's own.
install_bundle() {
    if ! compgen -G "$bundle/*.whl" >/dev/null; then
        echo "no wheels in $bundle: run 'make gpu-bundle' on a machine with network first" >&2
        return 1
    fi
    echo "installing $(find "$bundle" -name '*.whl' | wc -l) wheels from $bundle into $SITE"
    rm -rf "$SITE"
    if python3 -m pip --version >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$bundle"/*.whl
    else  # no pip: a wheel is a zip archive laid out for site-packages, which is all --target does with it
        for wheel in "$bundle"/*.whl; do python3 -m zipfile -e "$wheel" "$SITE"; done
    fi
}

# This run's results and nothing older, into $OUT when it is set.
copy_results() {
    [[ -n ${OUT:-} ]] || return 0
    find benchmarks/results -maxdepth 1 -name 'gpu-*' \( -name '*.json' -o -name '*.md' \) -newer "$stamp" \
        -exec cp {} "$OUT"/ \;
    echo "copied to $OUT: $(cd "$OUT" && ls)"
}

main() {
    install_bundle
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    python3 -m benchmarks.gpu_bundle "$SITE"  # versions, and every requirement of the wheels met, or stop here
    local left=$((LIMIT_S - SECONDS)) status=0
    # gpu_check's budget (when compiled cells stop starting) leaves 40 s for a last compiled cell and the results;
    # a --budget among the options wins, being the later one; the timeout ends a run that still overruns
    echo "running gpu_check within $((left - 10)) s: python3 -m benchmarks.gpu_check --budget $((left - 50)) $*"
    timeout -k 10 $((left - 10)) python3 -m benchmarks.gpu_check --budget $((left - 50)) "$@" || status=$?
    copy_results
    echo "gpu_check exit $status after ${SECONDS} s in all"
    return "$status"
}

SECONDS=0
main "$@" 2>&1 | tee "$log"
