"""Boosting against bagging and plain averaging, measured: weak members of equal budget on MNIST, 5 per ensemble,
each group evaluated by ``ensemble``, with the commands the Boosting page shows, in fresh processes.

    python -m benchmarks.boosting

- ``boosting``: the MNIST MLP recipe made weak (one hidden layer of 16, no dropout, 30 batches of one epoch):
  5 members on the training split (seeds 0–4, softmax average), ``bag --members 5`` and ``boost --members 5``; the
  test accuracy of every member and of each ensemble (boosting's α-weighted vote, hard and soft).

``benchmarks.results`` runs this as a part of ``make results`` and renders it with ``TITLES``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.common import machine
from benchmarks.workflows import lightning_cnn, run_folders

MLP_RECIPE = "configs/mnist/mlp.yaml"
# a weak learner: one hidden layer of 16, no dropout, 30 batches of 128 images (3,840 draws of the training split)
WEAK = ["--model.hidden", "[16]", "--model.dropout", "0", "--trainer.max_epochs", "1", "--trainer.limit_train_batches",
        "30", "--test_after_fit", "false", "--trainer.enable_progress_bar", "false"]  # fmt: skip
MEMBERS = 5


def boosting(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """5 weak members per group (2 in a quick check): seeds on the training split, ``bag`` and ``boost``; then
    ``ensemble`` over each group."""
    command = partial(lightning_cnn, in_process=in_process)
    members = 2 if in_process else MEMBERS
    with tempfile.TemporaryDirectory() as tmp:
        fit = ["--config", MLP_RECIPE, *WEAK, "--trainer.default_root_dir", tmp, *extra]
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        for seed in range(members):
            command("fit", *fit, "--seed_everything", str(seed))
        seconds["averaging"] = time.perf_counter() - start
        seconds["bagging"] = command("bag", "--members", str(members), *fit)
        seconds["boosting"] = command("boost", "--members", str(members), *fit)
        runs = [str(path) for path in run_folders(Path(tmp))]
        boost = json.loads(next(Path(tmp).glob("lightning_logs/boost_*/boost.json")).read_text())
        groups = {"averaging": runs[:members], "bagging": runs[members : 2 * members], "boosting": runs[2 * members :]}
        results = {}
        for name, group in groups.items():
            output = Path(tmp) / f"ensemble-{name}.json"
            command("ensemble", "--ckpt_path", *group, "--output", str(output))
            results[name] = json.loads(output.read_text())
    rounds = [{k: run[k] for k in ("member", "alpha", "err", "weights")} for run in boost["runs"]]
    return {"config": MLP_RECIPE, "weak": WEAK, "members": members, "seconds": seconds, "groups": results,
            "rounds": rounds, "stopped": boost.get("stopped")}  # fmt: skip


PARTS: dict[str, Callable[[list[str], bool], dict[str, Any]]] = {"boosting": boosting}
NEEDS_MNIST = ("boosting",)
NEEDS_CIFAR_JPEG: tuple[str, ...] = ()


# --- Markdown --------------------------------------------------------------------------------------------------
def md_boosting(record: dict[str, Any]) -> list[str]:
    lines = ["| ensemble | members' test accuracy (mean, min–max) | softmax average | α-weighted vote | α-weighted"
             " softmax |", "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name, result in record["groups"].items():
        accs = [row["test_acc"] for row in result["members"]]
        spread = f"{100 * statistics.fmean(accs):.2f} % ({100 * min(accs):.2f}–{100 * max(accs):.2f})"
        boosted = result.get("boosting") or {}
        vote = f"{100 * boosted['test_acc']:.2f} %" if "test_acc" in boosted else "–"
        soft = f"{100 * boosted['soft']['test_acc']:.2f} %" if "soft" in boosted else "–"
        lines.append(f"| {name} ({len(accs)}) | {spread} | {100 * result['ensemble_test_acc']:.2f} % | {vote} |"
                     f" {soft} |")  # fmt: skip
    rounds = ", ".join(f"{r['member']}: err {r['err']:.3f}, α {r['alpha']:.2f}" for r in record["rounds"])
    images = next(iter(record["groups"].values()))["num_images"]
    stopped = f" Stopped early: {record['stopped']}." if record.get("stopped") else ""
    return [*lines, "", f"`{record['config']}` made weak ({' '.join(record['weak'][:8])}), {record['members']}"
            f" members per ensemble, test accuracy on MNIST's {images:,} test images. Boosting's rounds (weighted"
            f" training error, α): {rounds}.{stopped}"]  # fmt: skip


TITLES: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "boosting": ("Boosting, bagging and averaging of weak members", md_boosting),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    args = parser.parse_args()
    print(f"boosting: {', '.join(args.parts)}\nmachine: {machine()}")
    for name in args.parts:
        record = PARTS[name]([], False)
        print("\n".join(TITLES[name][1](record)), flush=True)


if __name__ == "__main__":
    main()
