"""The examples of the Training, Trained runs and Experiments pages, run with the commands those pages show.

    python -m benchmarks.workflows [--parts report loggers ensembles experiments predict_export]

- ``report``: a 1-epoch LeNet-5 fit (seed 42): its test metrics, and the time the evaluation report takes per
  validation epoch and per test against the epoch's training time;
- ``loggers``: the same fit logged to TensorBoard, CSV, MLflow and W&B (offline) at once: val/acc in each;
- ``ensembles``: 3 LeNet-5 members trained on the training split (seeds 0–2) and 3 bagged ones (``bag``), each
  1 epoch, evaluated by ``ensemble`` in three groups;
- ``experiments``: ``kfold --folds 3`` and a 4-trial ``search``;
- ``predict_export``: a 1-epoch ConvNet on the CIFAR-10 JPEG copy, ``predict-files`` on its 10,000 test files,
  and ``export`` (ONNX and TorchScript) of that run.

Every command runs in a fresh process, as a user runs it, except ``report``, which times the report's hooks in
this process.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import CIFAR_JPEG, ROOT, TrainTimer, added_environment, machine, python_process

MNIST_RECIPE = "configs/mnist/lenet5.yaml"
JPEG_RECIPE = "configs/cifar10_jpeg/convnet_bn_dropout.yaml"
ONE_EPOCH = ["--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"]
LOGGERS = ("tensorboard", "csv", "mlflow", "wandb")
KFOLD = ["--folds", "3", "--config", MNIST_RECIPE, "--trainer.max_epochs", "1", "--test_after_fit", "false"]
SEARCH = ["--space", "configs/search/lenet5_lr.yaml", "--trials", "4", "--trainer.max_epochs", "2",
          "--trainer.limit_train_batches", "0.5", "--test_after_fit", "false"]  # fmt: skip
MEMBERS = 3


def lightning_cnn(*args: str, env: dict[str, str] | None = None, in_process: bool = False) -> float:
    """Run ``lightning-cnn ARGS`` from the project folder with ``env`` added to the environment, in a fresh process
    as a user runs it, or in this one (``in_process``: quick checks, which skip the seconds a start costs); its
    wall seconds. A failure raises with the end of its error output."""
    if not in_process:
        return python_process(["-m", "lightning_cnn", *args], env)
    from lightning_cnn.__main__ import main

    start = time.perf_counter()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with added_environment(env):
            main(list(args))
    except SystemExit as exit_:
        if exit_.code:
            raise RuntimeError(f"lightning-cnn {' '.join(args)} failed (exit {exit_.code})") from exit_
    finally:
        os.chdir(cwd)
    return time.perf_counter() - start


def run_folders(root: Path) -> list[Path]:
    """The ``version_N`` run folders under ``root``, in the order they were made."""
    from lightning_cnn.run_folder import run_version, runs_under

    return sorted(runs_under(root).glob("version_*"), key=run_version)


def metrics_json(run: Path) -> dict[str, Any]:
    return json.loads((run / "metrics.json").read_text())


# --- the parts ------------------------------------------------------------------------------------------------
def report(extra: list[str], in_process: bool = True) -> dict[str, Any]:
    """A 1-epoch LeNet-5 fit with its test, always in this process (``in_process`` is for the parts' common
    signature): the evaluation report's hooks are timed here."""
    from lightning_cnn.cli import cli_main
    from lightning_cnn.training.report import EvaluationReport

    seconds: dict[str, list[float]] = {"on_validation_epoch_end": [], "on_test_end": []}
    originals = {hook: getattr(EvaluationReport, hook) for hook in seconds}

    def timed(hook: str) -> Callable[..., None]:
        def run(self: EvaluationReport, trainer: Any, pl_module: Any) -> None:
            start = time.perf_counter()
            originals[hook](self, trainer, pl_module)
            if not trainer.sanity_checking:
                seconds[hook].append(time.perf_counter() - start)

        return run

    sys.argv[1:] = []  # the caller's flags are parsed already; LightningCLI should not see them
    with tempfile.TemporaryDirectory() as tmp:
        for hook in seconds:
            setattr(EvaluationReport, hook, timed(hook))
        try:
            cli = cli_main(["fit", "--config", str(ROOT / MNIST_RECIPE), *ONE_EPOCH, "--trainer.default_root_dir", tmp,
                            "--trainer.callbacks+=benchmarks.common.TrainTimer", *extra])  # fmt: skip
        finally:
            for hook, original in originals.items():
                setattr(EvaluationReport, hook, original)
        timer = next(cb for cb in cli.trainer.callbacks if isinstance(cb, TrainTimer))
        test = metrics_json(run_folders(Path(tmp))[0])
    return {
        "config": MNIST_RECIPE,
        "test": {key: value for key, value in test.items() if key.startswith("test/")},
        "images": test["num_images"],
        "epoch_s": timer.seconds,
        "report_per_val_epoch_s": max(seconds["on_validation_epoch_end"]),
        "report_per_test_s": max(seconds["on_test_end"]),
    }


def loggers(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """The 1-epoch LeNet-5 fit logged to the four loggers at once; the last val/acc each of them holds."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from benchmarks.logged import csv_series, mlflow_run, wandb_offline_run

    command = partial(lightning_cnn, in_process=in_process)

    with tempfile.TemporaryDirectory() as tmp:
        configs = [arg for name in LOGGERS for arg in ("--config", f"configs/logger/{name}.yaml")]
        # W&B offline, its settings and caches in this run's folder, not the user's home
        wandb = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
        wandb |= {name: f"{tmp}/wandb-home" for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR")}
        command("fit", "--config", MNIST_RECIPE, *configs, *ONE_EPOCH, "--trainer.default_root_dir", tmp, *extra,
                      env=wandb)  # fmt: skip
        (run,) = run_folders(Path(tmp))
        events = EventAccumulator(str(run))
        events.Reload()
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # the local store the logger wrote, as it does
        values = {
            "tensorboard": events.Scalars("val/acc")[-1].value,
            "csv": csv_series(run, "val/acc")[-1],
            "mlflow": mlflow_run(Path(tmp))[0].data.metrics["val/acc"],
            "wandb": wandb_offline_run(Path(tmp))["history"]["val/acc"][-1],
        }
        test_acc = metrics_json(run)["test/acc"]
    return {"config": MNIST_RECIPE, "val_acc": values, "test_acc": test_acc}


def ensembles(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """3 members on the training split, 3 bagged members, and ``ensemble`` over each group and over all 6."""
    command = partial(lightning_cnn, in_process=in_process)
    with tempfile.TemporaryDirectory() as tmp:
        root = ["--trainer.default_root_dir", tmp]
        start = time.perf_counter()
        for member in range(MEMBERS):
            command("fit", "--config", MNIST_RECIPE, "--seed_everything", str(member), *ONE_EPOCH, *root, *extra)
        command("bag", "--members", str(MEMBERS), "--config", MNIST_RECIPE, *ONE_EPOCH, *root, *extra)
        member_s = (time.perf_counter() - start) / (2 * MEMBERS)
        runs = [str(path) for path in run_folders(Path(tmp))]
        groups = {"training split": runs[:MEMBERS], "bagged": runs[MEMBERS:], "all": runs}
        results = {}
        for name, members in groups.items():
            output = Path(tmp) / f"ensemble-{name}.json"
            command("ensemble", "--ckpt_path", *members, "--output", str(output))
            results[name] = json.loads(output.read_text())
    return {"config": MNIST_RECIPE, "member_s": member_s, "groups": results}


def experiments(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """``kfold --folds 3`` and a 4-trial ``search`` of the LeNet-5 recipe: their figures and wall times."""
    command = partial(lightning_cnn, in_process=in_process)
    with tempfile.TemporaryDirectory() as tmp:
        root = ["--trainer.default_root_dir", tmp]
        kfold_s = command("kfold", *KFOLD, *root, *extra)
        kfold = json.loads(next(Path(tmp).glob("lightning_logs/kfold_*/kfold.json")).read_text())
        search_s = command("search", *SEARCH, *root, *extra)
        with open(next(Path(tmp).glob("lightning_logs/search_*/search.csv")), newline="") as f:
            trials = list(csv.DictReader(f))
    space = yaml.safe_load((ROOT / SEARCH[SEARCH.index("--space") + 1]).read_text())["space"]
    return {
        "kfold": {"command": " ".join(KFOLD), "seconds": kfold_s, "mean": kfold["mean"], "std": kfold["std"],
                  "folds": [run["metrics"]["val/acc"] for run in kfold["runs"]]},
        "search": {"command": " ".join(SEARCH), "seconds": search_s, "trials": trials, "options": list(space)},
    }  # fmt: skip


def predict_export(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """A 1-epoch ConvNet on the CIFAR-10 JPEG copy, ``predict-files`` on its unpacked test folder, ``export``."""
    from lightning_cnn.data.image_files import resolve_cache_dir, unpack_archive

    command = partial(lightning_cnn, in_process=in_process)

    data_dir = Path(os.environ.get("LIGHTNING_CNN_DATA") or "data")
    archive = Path(CIFAR_JPEG) if Path(CIFAR_JPEG).is_file() else data_dir / CIFAR_JPEG
    with tempfile.TemporaryDirectory() as tmp:
        command("fit", "--config", JPEG_RECIPE, *ONE_EPOCH, "--trainer.default_root_dir", tmp, *extra)
        (run,) = run_folders(Path(tmp))
        test_acc = metrics_json(run)["test/acc"]
        test_folder = unpack_archive(archive.resolve(), resolve_cache_dir(None)) / "test"
        files = sum(1 for path in test_folder.rglob("*") if path.is_file())
        predictions = Path(tmp) / "predictions.csv"
        predict_s = command("predict-files", "--ckpt_path", str(run), str(test_folder), "--no_progress",
                                     "--output", str(predictions))  # fmt: skip
        with open(predictions, newline="") as f:
            rows = list(csv.reader(f))[1:]  # path, predicted class, ...; each file sits in its class's folder
        predict_acc = sum(Path(row[0]).parent.name == row[1] for row in rows) / len(rows)
        onnx = Path(tmp) / "model.onnx"
        command("export", "--ckpt_path", str(run), "--output", str(onnx), "--torchscript")
        diffs = json.loads(onnx.with_suffix(".json").read_text())["max_abs_diff_vs_pytorch"]
    return {"config": JPEG_RECIPE, "test_acc": test_acc, "files": files, "predicted": len(rows),
            "predict_acc": predict_acc, "predict_s": predict_s, "export_max_abs_diff": diffs}  # fmt: skip


PARTS: dict[str, Callable[[list[str], bool], dict[str, Any]]] = {
    "report": report,
    "loggers": loggers,
    "ensembles": ensembles,
    "experiments": experiments,
    "predict_export": predict_export,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    args = parser.parse_args()
    print(f"workflows: {', '.join(args.parts)}\nmachine: {machine()}")
    for name in args.parts:
        print(f"{name}: {json.dumps(PARTS[name]([], False), indent=1, default=str)}", flush=True)


if __name__ == "__main__":
    main()
