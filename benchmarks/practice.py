"""The practitioner's tools, measured: the learning-rate finder, test-time augmentation, weight averaging,
calibration and repeated seeds, each run with the commands the Tools pages show, in fresh processes.

    python -m benchmarks.practice [--parts tune tta averaging calibration seeds]

- ``tune``: ``tune`` on the LeNet-5 MNIST recipe, then the recipe with its own lr and with the suggested one;
- ``tta``: the ConvNet recipe of the CIFAR-10 JPEG copy (crop + flip), tested without and with ``--tta true``;
- ``averaging``: the LeNet-5 recipe, the recipe with ``configs/callbacks/swa.yaml``, and ``average --last 2`` of
  the plain run, for seeds 42 and 1;
- ``calibration``: the LeNet-5 recipe, then ``calibrate``: ECE on the test split before and after;
- ``seeds``: ``repeat --seeds 42 1 2 3`` of the LeNet-5 recipe: each run and min / mean ± std / max.

``benchmarks.results`` runs these as parts of ``make results`` and renders them with ``TITLES``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import alternate, best, machine
from benchmarks.workflows import JPEG_RECIPE, MNIST_RECIPE, lightning_cnn, metrics_json, run_folders

SWA = "configs/callbacks/swa.yaml"
AVERAGING_SEEDS = (42, 1)
REPEAT_SEEDS = (42, 1, 2, 3)
QUIET = ["--trainer.enable_progress_bar", "false"]


def newest_run(root: Path) -> Path:
    return run_folders(root)[-1]


def recipe_lr(config: str) -> float:
    """The optimizer lr the recipe sets."""
    model = yaml.safe_load(Path(config).read_text())["model"]["init_args"]
    return float(model["optimizer"]["init_args"]["lr"])


# --- the parts ------------------------------------------------------------------------------------------------
def tune(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """``tune`` on the MNIST recipe, then one fit with the recipe's lr and one with the suggested lr."""
    command = partial(lightning_cnn, in_process=in_process)
    with tempfile.TemporaryDirectory() as tmp:
        root = ["--trainer.default_root_dir", tmp]
        fragment = Path(tmp) / "tuned.yaml"
        tune_s = command("tune", "--config", MNIST_RECIPE, "--output", str(fragment), *root, *extra)
        suggested = yaml.safe_load(fragment.read_text())
        suggested_lr = float(suggested["model"]["init_args"]["optimizer"]["init_args"]["lr"])
        rows = []
        for name, configs in (("recipe", [MNIST_RECIPE]), ("suggested", [MNIST_RECIPE, str(fragment)])):
            args = [arg for config in configs for arg in ("--config", config)]
            seconds = command("fit", *args, *QUIET, *root, *extra)
            lr = recipe_lr(MNIST_RECIPE) if name == "recipe" else suggested_lr
            rows.append({"lr": name, "value": lr, "test_acc": metrics_json(newest_run(Path(tmp)))["test/acc"],
                         "seconds": seconds})  # fmt: skip
    return {"config": MNIST_RECIPE, "tune_s": tune_s, "rows": rows}


def tta(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """The CIFAR-10 JPEG-copy recipe, ``test`` of its run without and with ``--tta true`` (both accuracies), then
    the cost: the run's test-split probabilities without and with the views, in this process, in turn, best of
    three rounds each (the least disturbed by anything else the machine runs)."""
    from lightning_cnn.inference.trained import load_trained
    from lightning_cnn.tools.ensemble import data_settings, load_splits

    command = partial(lightning_cnn, in_process=in_process)
    with tempfile.TemporaryDirectory() as tmp:
        root = ["--trainer.default_root_dir", tmp]
        command("fit", "--config", JPEG_RECIPE, *QUIET, *root, *extra)
        run = newest_run(Path(tmp))
        test = ["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(run), *QUIET, *root, *extra]
        plain_s = command(*test)
        plain = metrics_json(newest_run(Path(tmp)))
        tta_s = command(*test, "--tta", "true")
        both = metrics_json(newest_run(Path(tmp)))
        trained = load_trained(run)
        _, (images, _) = load_splits(*data_settings(trained, None, {}), trained.checkpoint_path)
        images = images[:256] if in_process else images
        with_views = trained.with_tta()

        def timed(model: Any) -> Callable[[], float]:
            def run_once() -> float:
                start = time.perf_counter()
                model.probabilities(images)
                return time.perf_counter() - start

            return run_once

        rounds = alternate({"plain": timed(trained), "tta": timed(with_views)}, 1 if in_process else 3)
    return {"config": JPEG_RECIPE, "test_acc": plain["test/acc"], "tta_acc": both["test/tta_acc"],
            "plain_s": plain_s, "tta_s": tta_s, "views": both.get("tta_views"), "images": len(images),
            "forward_plain_s": best(rounds["plain"]), "forward_tta_s": best(rounds["tta"])}  # fmt: skip


def averaging(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """Per seed: the recipe (one checkpoint per epoch kept), ``average --last 2`` of that run, and the recipe with
    stochastic weight averaging."""
    command = partial(lightning_cnn, in_process=in_process)
    rows = []
    two_epochs = ["--trainer.max_epochs", "2"] if in_process else []  # a quick check fits 1 epoch; averaging needs 2
    for seed in AVERAGING_SEEDS:
        with tempfile.TemporaryDirectory() as tmp:
            root = ["--trainer.default_root_dir", tmp]
            fit = ["fit", "--config", MNIST_RECIPE, "--seed_everything", str(seed), *QUIET, *root, *extra, *two_epochs]
            plain_s = command(*fit, "--checkpoint.save_top_k", "-1")
            run = newest_run(Path(tmp))
            plain = metrics_json(run)["test/acc"]
            command("average", str(run), "--last", "2")
            average_ckpt = run / "checkpoints" / "average_last2.ckpt"
            command("test", "--config", str(run / "config.yaml"), "--ckpt_path", str(average_ckpt), *QUIET, *root,
                    *extra)  # fmt: skip
            averaged = metrics_json(newest_run(Path(tmp)))["test/acc"]
            swa_s = command(*fit, "--config", SWA)
            swa = metrics_json(newest_run(Path(tmp)))["test/acc"]
        rows.append({"seed": seed, "plain": plain, "average_last2": averaged, "swa": swa, "plain_s": plain_s,
                     "swa_s": swa_s})  # fmt: skip
    return {"config": MNIST_RECIPE, "swa": SWA, "rows": rows}


def calibration(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """The recipe, then ``calibrate``: its temperature and the test split's ECE, MCE and NLL before and after."""
    command = partial(lightning_cnn, in_process=in_process)
    with tempfile.TemporaryDirectory() as tmp:
        command("fit", "--config", MNIST_RECIPE, *QUIET, "--trainer.default_root_dir", tmp, *extra)
        run = newest_run(Path(tmp))
        command("calibrate", str(run))
        record = json.loads((run / "calibration.json").read_text())
        test_acc = metrics_json(run)["test/acc"]
    return {"config": MNIST_RECIPE, "test_acc": test_acc, **record}


def seeds(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """``repeat --seeds 42 1 2 3`` of the main recipe (the first two in a quick check, which runs in this process)."""
    chosen = REPEAT_SEEDS[:2] if in_process else REPEAT_SEEDS
    with tempfile.TemporaryDirectory() as tmp:
        seconds = lightning_cnn("repeat", "--seeds", *map(str, chosen), "--config", MNIST_RECIPE, *QUIET,
                                "--trainer.default_root_dir", tmp, *extra, in_process=in_process)  # fmt: skip
        record = json.loads(next(Path(tmp).glob("lightning_logs/repeat_*/repeat.json")).read_text())
    return {"config": MNIST_RECIPE, "seconds": seconds, "runs": record["runs"],
            **{key: record[key] for key in ("min", "mean", "std", "max")}}  # fmt: skip


PARTS: dict[str, Callable[[list[str], bool], dict[str, Any]]] = {
    "tune": tune,
    "tta": tta,
    "averaging": averaging,
    "calibration": calibration,
    "seeds": seeds,
}
NEEDS_MNIST = ("tune", "averaging", "calibration", "seeds")
NEEDS_CIFAR_JPEG = ("tta",)


# --- Markdown --------------------------------------------------------------------------------------------------
def md_tune(record: dict[str, Any]) -> list[str]:
    lines = ["| lr | value | test accuracy |", "| --- | ---: | ---: |"]
    for row in record["rows"]:
        lines.append(f"| {row['lr']} | {row['value']:.3g} | {100 * row['test_acc']:.2f} % |")
    return [*lines, "", f"`lightning-cnn tune --config {record['config']}` (100 steps), then `fit` with the recipe"
            " alone and with the written fragment as a second `--config`, on MNIST, seed 42."]  # fmt: skip


def md_tta(record: dict[str, Any]) -> list[str]:
    gain = 100 * (record["tta_acc"] - record["test_acc"])
    views = record.get("views") or []
    cost = record["forward_tta_s"] / record["forward_plain_s"]
    return [
        f"| test | accuracy | probabilities of the {record['images']:,} test images |",
        "| --- | ---: | ---: |",
        f"| plain | {100 * record['test_acc']:.2f} % | {record['forward_plain_s']:.1f} s |",
        f"| `--tta true` ({len(views)} views) | {100 * record['tta_acc']:.2f} % | {record['forward_tta_s']:.1f} s |",
        "",
        f"Gain {gain:+.2f} points for {cost:.1f}× the model's time (best of three rounds, in turn; the views:"
        f" {', '.join(views)}). `{record['config']}`, seed 42, on a JPEG-compressed copy of CIFAR-10 (lossy: not"
        " comparable with CIFAR-10 results).",
    ]


def md_averaging(record: dict[str, Any]) -> list[str]:
    lines = ["| seed | recipe | `average --last 2` | + SWA |", "| ---: | ---: | ---: | ---: |"]
    for row in record["rows"]:
        lines.append(f"| {row['seed']} | {100 * row['plain']:.2f} % | {100 * row['average_last2']:.2f} % |"
                     f" {100 * row['swa']:.2f} % |")  # fmt: skip
    return [*lines, "", f"Test accuracy on MNIST of `{record['config']}` (3 epochs), of the average of its last two"
            f" epoch checkpoints, and of the recipe with `{record['swa']}`."]  # fmt: skip


def md_calibration(record: dict[str, Any]) -> list[str]:
    rows = [("ECE", "ece"), ("MCE", "mce"), ("NLL", "nll")]
    lines = ["| test split | before | after |", "| --- | ---: | ---: |"]
    for name, key in rows:
        before, after = record.get(f"test_{key}_before"), record.get(f"test_{key}_after")
        if before is not None and after is not None:
            lines.append(f"| {name} | {before:.4f} | {after:.4f} |")
    return [*lines, "", f"`{record['config']}` (test accuracy {100 * record['test_acc']:.2f} %), then `lightning-cnn"
            f" calibrate`: temperature {record['temperature']:.3f}, fit on {record['val_images']:,} validation"
            " images of MNIST."]  # fmt: skip


def md_seeds(record: dict[str, Any]) -> list[str]:
    names = [name for name in record["mean"] if name in ("test/acc", "test/loss", "test/ece")] or list(record["mean"])
    lines = ["| seed | " + " | ".join(names) + " |", "| ---: |" + " ---: |" * len(names)]
    for run in record["runs"]:
        lines.append(f"| {run['seed']} | " + " | ".join(f"{run['metrics'][n]:.4f}" for n in names) + " |")
    lines.append("| min | " + " | ".join(f"{record['min'][n]:.4f}" for n in names) + " |")
    lines.append("| mean ± std | " + " | ".join(f"{record['mean'][n]:.4f} ± {record['std'][n]:.4f}" for n in names)
                 + " |")  # fmt: skip
    lines.append("| max | " + " | ".join(f"{record['max'][n]:.4f}" for n in names) + " |")
    seeds_given = " ".join(str(run["seed"]) for run in record["runs"])
    return [*lines, "", f"`lightning-cnn repeat --seeds {seeds_given} --config {record['config']}` on MNIST."]


TITLES: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "tune": ("The learning-rate finder against the recipe's lr", md_tune),
    "tta": ("Test-time augmentation: gain and cost", md_tta),
    "averaging": ("Checkpoint averaging and SWA against the plain recipe", md_averaging),
    "calibration": ("Calibration: ECE before and after temperature scaling", md_calibration),
    "seeds": ("The main recipe over four seeds (`repeat`)", md_seeds),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    args = parser.parse_args()
    print(f"practice: {', '.join(args.parts)}\nmachine: {machine()}")
    for name in args.parts:
        record = PARTS[name]([], False)
        print("\n".join(TITLES[name][1](record)), flush=True)


if __name__ == "__main__":
    main()
