"""Every accuracy and timing figure the docs quote, regenerated from scratch and written as dated tables.

    python -m benchmarks.results                      # everything (hours on a 2-core CPU)
    python -m benchmarks.results --parts recipe       # only the main recipe's seeds × threads table
    python -m benchmarks.results --quick              # every part on a few batches: checks the script, not figures

Writes ``OUT/cpu.md`` and ``OUT/cpu.json`` (``cpu-quick.*`` in quick mode, so a check never overwrites real
figures). The parts run now replace their sections; the others keep their earlier figures and dates. Data is
found like any command finds it: ``--data_dir``, else ``$LIGHTNING_CNN_DATA``, else ``./data``; a part whose data
is missing is skipped with a line saying what to put where.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from benchmarks import audit, boosting, common, multilabel, practice, startup, time_to_accuracy
from benchmarks.common import CIFAR_JPEG, ROOT, machine, seed, torch_threads
from lightning_cnn.tools.recipes import MEASURED

# modules with parts of their own: PARTS, TITLES, NEEDS_MNIST, NEEDS_CIFAR_JPEG
SUITES = (practice, multilabel, boosting, audit, time_to_accuracy, startup)
PARTS = (
    *("models", "recipe", "mnist_recipes", "cifar_recipes", "cifar_augment"),
    *("overhead", "instructions", "pipeline", "end_to_end", "memory", "augmentations", "plain_logs", "parallel_search"),
    *("report", "loggers", "ensembles", "experiments", "predict_export"),
    *(name for suite in SUITES for name in suite.PARTS),
)
MAIN_RECIPE = "configs/mnist/lenet5.yaml"
MAIN_SEEDS = (42, 1, 2, 3)  # the recipe's own seed and three others
MAIN_THREADS = (1, 2)
MAIN_MINIMUM = 0.990  # what the recipe promises for every seed and thread count
# the MNIST recipes of the models table (ResNet-18's is a GPU recipe), each over the seeds below
MNIST_RECIPES = ("mlp", "simple_cnn", "lenet5", "convnet", "convnet_dropout", "convnet_bn", "alexnet")
RECIPE_SEEDS = (42, 1, 2)
# every recipe for the CIFAR-10 JPEG copy, at its own budget: those that fit a CPU
JPEG_RECIPES = "configs/cifar10_jpeg"
# stronger augmentation on top of the CIFAR-10 JPEG-copy recipe, at the recipe's own budget (10 epochs)
AUGMENT_RECIPE = "configs/cifar10_jpeg/convnet_bn_dropout.yaml"
AUGMENT_VARIANTS = {
    "the recipe (crop + flip)": [],
    "+ TrivialAugmentWide": ["--config", "configs/augment/trivialaugment.yaml"],
    "+ MixUp or CutMix": ["--config", "configs/augment/mixup_cutmix.yaml"],
}
# a fit of a few batches: checks that the code path runs, measures nothing
QUICK_FIT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
             "--trainer.limit_test_batches", "1", "--data.val_size", "0.2"]  # fmt: skip
QUICK_DATA = {"val_size": 0.2}  # tiny data sets have fewer than the 5,000 validation images of the real ones


RESULTS = ROOT / "benchmarks" / "results"  # the published figures; the package's measured.json follows them


def today() -> str:
    return datetime.date.today().isoformat()


def describe_machine() -> dict[str, Any]:
    """The machine and software every figure of a run was measured on."""
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    return {
        "summary": machine(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "gpus": gpus,
    }


def missing_data(part: str, data_dir: Path, quick: bool = False) -> str | None:
    """What a part needs that is not in ``data_dir`` or not installed, as a line a user can act on; None if nothing."""
    from lightning_cnn.data import MNISTDataModule

    needs_mnist = part in (
        *("recipe", "mnist_recipes", "overhead", "instructions", "memory", "plain_logs", "parallel_search"),
        *("report", "loggers", "ensembles", "experiments", *(n for suite in SUITES for n in suite.NEEDS_MNIST)),
    )
    needs_cifar = part in (
        *("cifar_recipes", "cifar_augment", "overhead", "pipeline", "end_to_end", "memory", "predict_export"),
        *(name for suite in SUITES for name in suite.NEEDS_CIFAR_JPEG),
    )
    missing = []
    if needs_mnist and not MNISTDataModule(data_dir=str(data_dir)).files_present():
        missing.append(f"MNIST (its raw files in {data_dir}/MNIST/raw, or run any MNIST fit with download on)")
    if needs_cifar and not (Path(CIFAR_JPEG).is_file() or (data_dir / CIFAR_JPEG).is_file()):
        missing.append(f"the CIFAR-10 JPEG copy ({data_dir}/{CIFAR_JPEG})")
    modules = (  # (part, the module it needs, the extra that installs it)
        *(("augmentations", "kornia", "dev"), ("parallel_search", "optuna", "search")),
        *(("experiments", "optuna", "search"), ("loggers", "mlflow", "loggers"), ("loggers", "wandb", "loggers")),
        ("predict_export", "onnxruntime", "export"),
    )
    for needed, module, extra in modules:
        if part == needed and importlib.util.find_spec(module) is None:
            missing.append(f"{module} (pip install -e '.[{extra}]')")
    if part == "instructions" and not quick and shutil.which("valgrind") is None:  # quick mode runs without it
        missing.append("valgrind (apt install valgrind)")
    return f"needs {' and '.join(missing)}" if missing else None


# --- the parts: each returns a JSON-able record --------------------------------------------------------------
def part_models(quick: bool) -> dict[str, Any]:
    from lightning_cnn.tools.models import recipe_rows

    return {"rows": recipe_rows()}


def part_recipe(quick: bool) -> dict[str, Any]:
    from benchmarks.recipes import run_recipe

    seeds, threads = (MAIN_SEEDS[:1], MAIN_THREADS[:1]) if quick else (MAIN_SEEDS, MAIN_THREADS)
    runs = []
    for s in seeds:
        for t in threads:
            run = run_recipe(MAIN_RECIPE, s, t, QUICK_FIT if quick else None)
            print(f"  {MAIN_RECIPE} seed {s}, {t} threads: test/acc {run.test_acc:.4f} ({run.seconds:.0f} s)")
            runs.append(vars(run))
    return {"config": MAIN_RECIPE, "minimum": MAIN_MINIMUM, "runs": runs}


def part_mnist_recipes(quick: bool, recipes: tuple[str, ...] = MNIST_RECIPES) -> dict[str, Any]:
    from benchmarks.recipes import run_recipe

    names, seeds = (recipes[:1], RECIPE_SEEDS[:1]) if quick else (recipes, RECIPE_SEEDS)
    rows = []
    for name in names:
        config = f"configs/mnist/{name}.yaml"
        # quick: in this process, as the recipe part already checks the fresh-process path
        runs = [run_recipe(config, s, None, QUICK_FIT if quick else None, in_process=quick) for s in seeds]
        accs = [run.test_acc for run in runs]
        print(f"  {config}: test/acc min {min(accs):.4f} over seeds {list(seeds)}", flush=True)
        rows.append({"config": config, "seeds": list(seeds), "test_acc": accs, "date": today(),
                     "seconds": statistics.mean(run.seconds for run in runs)})  # fmt: skip
    return {"rows": rows}


def keep_earlier_rows(record: dict[str, Any], earlier: dict[str, Any] | None) -> dict[str, Any]:
    """The rows measured now and the earlier rows of the recipes not run now, in the models table's order, each with
    its date: the slow recipes can be measured a few at a time."""
    if not earlier or "rows" not in earlier or "rows" not in record:
        return record
    rows = {row["config"]: row | {"date": row.get("date", earlier["date"])} for row in earlier["rows"]}
    rows |= {row["config"]: row for row in record["rows"]}
    order = [f"configs/mnist/{name}.yaml" for name in MNIST_RECIPES]
    return record | {"rows": sorted(rows.values(), key=lambda row: order.index(row["config"]))}


def part_cifar_recipes(quick: bool) -> dict[str, Any]:
    from benchmarks.recipes import run_recipe

    rows = []
    for path in sorted((ROOT / JPEG_RECIPES).glob("*.yaml")):
        config = str(path.relative_to(ROOT))
        run = run_recipe(config, 42, None, QUICK_FIT if quick else None, in_process=quick)
        print(f"  {config}: test/acc {run.test_acc:.4f} ({run.seconds:.0f} s)", flush=True)
        rows.append({"config": config, "epochs": recipe_epochs(path), "test_acc": run.test_acc, "seconds": run.seconds})
    return {"rows": rows}


def recipe_epochs(path: Path) -> int:
    import yaml

    return int(yaml.safe_load(path.read_text())["trainer"]["max_epochs"])


def part_cifar_augment(quick: bool) -> dict[str, Any]:
    from benchmarks.recipes import run_recipe

    rows = []
    for name, extra in AUGMENT_VARIANTS.items():
        run = run_recipe(AUGMENT_RECIPE, 42, None, [*extra, *(QUICK_FIT if quick else [])], in_process=quick)
        print(f"  {name}: test/acc {run.test_acc:.4f} ({run.seconds:.0f} s)", flush=True)
        rows.append({"variant": name, "options": " ".join(extra), "test_acc": run.test_acc, "seconds": run.seconds})
    return {"config": AUGMENT_RECIPE, "rows": rows}


def part_overhead(quick: bool) -> dict[str, Any]:
    from benchmarks import overhead

    rows = []
    for threads in dict.fromkeys((1, torch.get_num_threads())):  # one thread and every core: the ratios differ
        with torch_threads(threads):
            rows += overhead.measure(rounds=1 if quick else 3, limit_batches=2 if quick else None)
    return {"rows": rows}


def part_instructions(quick: bool) -> dict[str, Any]:
    from benchmarks import instructions

    return instructions.measure(quick)


def part_pipeline(quick: bool) -> dict[str, Any]:
    from benchmarks import pipeline

    return {"rates": pipeline.measure(rounds=1 if quick else 3, limit_batches=2 if quick else None)}


def part_end_to_end(quick: bool) -> dict[str, Any]:
    from benchmarks import end_to_end

    models = ["SimpleCNN"] if quick else ["SimpleCNN", "ConvNet"]
    return {"rows": end_to_end.measure(models, rounds=1 if quick else 2, limit_batches=2 if quick else None)}


def part_memory(quick: bool) -> dict[str, Any]:
    from benchmarks import memory

    if quick:  # one fit in a child process shows the measurement works; the CIFAR-shaped one would double the time
        return {"rows": memory.measure(extra=QUICK_FIT, parts=("MNIST",))}
    return {"rows": memory.measure(cifar_epochs=2)}  # the 10-epoch CIFAR fit is in cifar_augment


def part_augmentations(quick: bool) -> dict[str, Any]:
    import kornia
    import torchvision

    from benchmarks import augment_policies, augment_vs_kornia

    batch_size, batches = (16, 1) if quick else (256, 20)
    with torch_threads(1):  # one core each, so the ratios do not depend on how each side uses threads
        ops = augment_vs_kornia.op_rates(batch_size, batches)
        policies = augment_policies.policy_rates("cpu", batch_size, batches)
    return {"batch_size": batch_size, "batches": batches, "kornia": kornia.__version__,
            "torchvision": torchvision.__version__, "ops": ops, "policies": policies}  # fmt: skip


def part_plain_logs(quick: bool) -> dict[str, Any]:
    from benchmarks import plain_logs

    return plain_logs.measure(QUICK_FIT if quick else None)


def part_parallel_search(quick: bool) -> dict[str, Any]:
    from benchmarks import parallel_search

    trials, extra = (2, QUICK_FIT) if quick else (8, None)
    options = " ".join(parallel_search.TRIAL_FIT)
    return {"space": parallel_search.SPACE, "options": options, "rows": parallel_search.measure(trials, extra)}


def workflow(
    name: str, parts: dict[str, Callable[[list[str], bool], dict[str, Any]]] | None = None
) -> Callable[[bool], dict[str, Any]]:
    """The part called ``name`` of ``parts`` (default: ``benchmarks.workflows``'): quick mode fits a few batches, in
    this process."""

    def run(quick: bool) -> dict[str, Any]:
        from benchmarks import workflows

        return (parts or workflows.PARTS)[name](QUICK_FIT if quick else [], quick)

    return run


RUNNERS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "models": part_models,
    "recipe": part_recipe,
    "mnist_recipes": part_mnist_recipes,
    "cifar_recipes": part_cifar_recipes,
    "cifar_augment": part_cifar_augment,
    "overhead": part_overhead,
    "instructions": part_instructions,
    "pipeline": part_pipeline,
    "end_to_end": part_end_to_end,
    "memory": part_memory,
    "augmentations": part_augmentations,
    "plain_logs": part_plain_logs,
    "parallel_search": part_parallel_search,
    **{name: workflow(name) for name in ("report", "loggers", "ensembles", "experiments", "predict_export")},
    **{name: workflow(name, suite.PARTS) for suite in SUITES for name in suite.PARTS},
}


# --- Markdown --------------------------------------------------------------------------------------------------
def percent(value: float) -> str:
    return f"{100 * value:.2f} %"


def md_models(record: dict[str, Any]) -> list[str]:
    from lightning_cnn.tools.models import recipe_table

    return [recipe_table(record["rows"])]


def md_recipe(record: dict[str, Any]) -> list[str]:
    runs = record["runs"]
    seeds = list(dict.fromkeys(run["seed"] for run in runs))
    threads = list(dict.fromkeys(run["threads"] for run in runs))
    acc = {(run["seed"], run["threads"]): run["test_acc"] for run in runs}
    lines = ["| seed | " + " | ".join(f"{t} thread{'s' * (t > 1)}" for t in threads) + " |",
             "| ---: |" + " ---: |" * len(threads)]  # fmt: skip
    for s in seeds:
        lines.append(f"| {s} | " + " | ".join(percent(acc[s, t]) if (s, t) in acc else "-" for t in threads) + " |")
    accs = [run["test_acc"] for run in runs]
    seconds = statistics.mean(run["seconds"] for run in runs)
    lines += ["", f"`{record['config']}`, tested checkpoint: {runs[0]['checkpoint']}. Minimum {percent(min(accs))},"
              f" mean {percent(statistics.mean(accs))} (promised: at least {percent(record['minimum'])} for every"
              f" run); {seconds:.0f} s per run, a fresh process each, fit and test."]  # fmt: skip
    return lines


def md_mnist_recipes(record: dict[str, Any]) -> list[str]:
    lines = [
        "| recipe | seeds | test accuracy: min | mean | max | s per run | measured |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in record["rows"]:
        accs = row["test_acc"]
        lines.append(f"| `{row['config']}` | {', '.join(map(str, row['seeds']))} | {percent(min(accs))} |"
                     f" {percent(statistics.mean(accs))} | {percent(max(accs))} | {row['seconds']:.0f} |"
                     f" {row.get('date', record['date'])} |")  # fmt: skip
    return [*lines, "", "A fresh process per run with torch's default threads, fit and test (`test_ckpt: auto`)."]


def md_cifar_recipes(record: dict[str, Any]) -> list[str]:
    lines = ["| recipe | epochs | test accuracy | wall time |", "| --- | ---: | ---: | ---: |"]
    for row in record["rows"]:
        minutes = row["seconds"] / 60
        lines.append(f"| `{row['config']}` | {row['epochs']} | {percent(row['test_acc'])} | {minutes:.1f} min |")
    return [*lines, "", "Seed 42, a fresh process per run with torch's default threads, fit and test, on a"
            " JPEG-compressed copy of CIFAR-10 (lossy: not comparable with CIFAR-10 results)."]  # fmt: skip


def md_cifar_augment(record: dict[str, Any]) -> list[str]:
    lines = ["| augmentation | options | test accuracy | wall time |", "| --- | --- | ---: | ---: |"]
    for row in record["rows"]:
        options = f"`{row['options']}`" if row["options"] else "-"
        lines.append(f"| {row['variant']} | {options} | {percent(row['test_acc'])} | {row['seconds'] / 60:.0f} min |")
    return [*lines, "", f"`{record['config']}` (ConvNet, batch norm + dropout 0.1, one-cycle SGD, 10 epochs), seed 42,"
            " on a JPEG-compressed copy of CIFAR-10 (lossy: not comparable with CIFAR-10 results)."]  # fmt: skip


def md_overhead(record: dict[str, Any]) -> list[str]:
    lines = ["| case | torch threads | images | plain loop img/s | bare Lightning img/s | lightning_cnn fit img/s"
             " | ours / bare Lightning | ours / plain loop | in CPU time: ours / bare | ours / plain |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for row in record["rows"]:
        n = row["images"]
        lines.append(f"| {row['case']}, batch {row['batch_size']} | {row.get('threads', '?')} | {n:,} |"
                     f" {n / row['plain_s']:,.0f} |"
                     f" {n / row['bare_s']:,.0f} | {n / row['ours_s']:,.0f} | {row['bare_s'] / row['ours_s']:.3f} |"
                     f" {row['plain_s'] / row['ours_s']:.3f} | {row['bare_cpu_s'] / row['ours_cpu_s']:.3f} |"
                     f" {row['plain_cpu_s'] / row['ours_cpu_s']:.3f} |")  # fmt: skip
    return [
        *lines,
        "",
        "One training epoch each, the three run in turn in one process, best of the rounds. With more threads the"
        " model's arithmetic takes less time while Python's per-step work (Lightning's hooks, ours) does not, so"
        " the ratios fall.",
    ]


def md_instructions(record: dict[str, Any]) -> list[str]:
    rows = record["rows"]
    if any(row["per_step"] is None for row in rows):
        return ["Not counted (a quick check runs the code without valgrind)."]
    lines = ["| side | instructions per training step |", "| --- | ---: |"]
    lines += [f"| {row['side']} | {row['per_step'] / 1e6:.2f} M |" for row in rows]
    bare, ours = (row["per_step"] for row in rows)
    return [*lines, "", f"Ours / bare Lightning in steps per instruction: {bare / ours:.4f}. LeNet-5 on MNIST, batch"
            f" 64, 1 torch thread, counted by valgrind's callgrind: each side in a fresh process for {record['few']}"
            f" and for {record['many']} training steps, the difference divided by the extra steps."]  # fmt: skip


def md_pipeline(record: dict[str, Any]) -> list[str]:
    rates = record["rates"]
    lines = ["| pipeline | images/s | × tutorial |", "| --- | ---: | ---: |"]
    for name in ("tutorial", "ours", "ours, 1 thread"):
        lines.append(f"| {name} | {rates[name]:,.0f} | {rates[name] / rates['tutorial']:.1f} |")
    return [*lines, "", f"{rates['images']:,} CIFAR-shaped images (the JPEG copy), batch 128, crop + flip."]


def md_end_to_end(record: dict[str, Any]) -> list[str]:
    lines = [
        "| model | tutorial + plain loop s/epoch | lightning_cnn fit s/epoch | speed-up |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in record["rows"]:
        lines.append(f"| {row['model']} | {row['tutorial_s']:.1f} | {row['ours_s']:.1f} |"
                     f" {row['tutorial_s'] / row['ours_s']:.2f}× |")  # fmt: skip
    return [*lines, "", f"{record['rows'][0]['images']:,} CIFAR-shaped images (the JPEG copy), batch 128, one epoch."]


def md_memory(record: dict[str, Any]) -> list[str]:
    lines = ["| data | recipe | peak RSS | limit | wall time |", "| --- | --- | ---: | ---: | ---: |"]
    for row in record["rows"]:
        lines.append(f"| {row['data']} | `{row['config']}` | {row['peak_rss_gb']:.2f} GB | {row['limit_gb']} GB |"
                     f" {row['seconds']:.0f} s |")  # fmt: skip
    return lines


def md_augmentations(record: dict[str, Any]) -> list[str]:
    lines = ["| augmentation | ours img/s | kornia img/s | ours / kornia |", "| --- | ---: | ---: | ---: |"]
    for name, rate in record["ops"].items():
        lines.append(f"| {name} | {rate['ours']:,.0f} | {rate['kornia']:,.0f} | {rate['ours'] / rate['kornia']:.2f} |")
    sides = list(next(iter(record["policies"].values())))
    lines += ["", "| policy | " + " | ".join(f"{side} img/s" for side in sides) + " |",
              "| --- |" + " ---: |" * len(sides)]  # fmt: skip
    for name, rate in record["policies"].items():
        lines.append(f"| {name} | " + " | ".join(f"{rate[side]:,.0f}" for side in sides) + " |")
    return [*lines, "", f"{record['batch_size']}×3×32×32 float images, {record['batches']} batches per side after 3"
            f" warm-up batches, interleaved, 1 torch thread; kornia {record['kornia']}, torchvision"
            f" {record['torchvision']}. Ours draws operations and magnitudes per image; kornia's policies draw one"
            " sub-policy per call for the whole batch, torchvision v2's one operation per call; 'tv2 per image'"
            " calls torchvision v2 on each image in a loop."]  # fmt: skip


def md_plain_logs(record: dict[str, Any]) -> list[str]:
    return [
        f"`lightning-cnn fit --config {record['config']}` with stdout and stderr redirected to a file:"
        f" {record['bytes']:,} bytes in {record['lines']} lines, {len(record['epoch_lines'])} of them written as an"
        " epoch ended:",
        "",
        "```",
        *record["epoch_lines"],
        "```",
    ]


def md_parallel_search(record: dict[str, Any]) -> list[str]:
    lines = [
        "| workers | wall time | trials | complete | pruned | best val/acc |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in record["rows"]:
        lines.append(f"| {row['workers']} | {row['seconds']:.0f} s | {row['trials']} | {row['complete']} |"
                     f" {row['pruned']} | {row['best']:.4f} |")  # fmt: skip
    command = (
        f"lightning-cnn search --space {record['space']} --trials {record['rows'][0]['trials']} {record['options']}"
    )
    return [*lines, "", f"`{command}` on MNIST; the workers are that command started in separate processes on one"
            " study."]  # fmt: skip


def md_report(record: dict[str, Any]) -> list[str]:
    test = record["test"]
    return [
        f"`lightning-cnn fit --config {record['config']} --trainer.max_epochs 1` (seed 42): `metrics.json` holds"
        f" test/acc {test['test/acc']:.4f}, test/acc_top5 {test['test/acc_top5']:.4f}, test/f1 {test['test/f1']:.4f}"
        f" over {record['images']:,} images. The evaluation report took {1000 * record['report_per_val_epoch_s']:.0f}"
        f" ms per validation epoch (the prediction grid) and {record['report_per_test_s']:.2f} s per test (the"
        f" confusion matrix, `metrics.json`), against {record['epoch_s']:.1f} s for the epoch's training batches."
    ]


def md_loggers(record: dict[str, Any]) -> list[str]:
    lines = ["| logger | val/acc |", "| --- | ---: |"]
    lines += [f"| {name} | {value:.4f} |" for name, value in record["val_acc"].items()]
    return [*lines, "", f"One fit of `{record['config']}` for 1 epoch (seed 42) logged to all four at once (W&B"
            f" offline), each read back from its own files; test/acc {record['test_acc']:.4f}."]  # fmt: skip


def md_ensembles(record: dict[str, Any]) -> list[str]:
    groups = record["groups"]
    names = {"training split": "3 members on the training split (seeds 0–2)", "bagged": "3 bagged members"
             " (bootstrap 0–2)", "all": "all 6"}  # fmt: skip

    def cell(name: str, row: str) -> str:
        result = groups[name]
        bagged_only = all(m["bootstrap_seed"] is not None for m in result["members"])
        if row == "members":
            return " / ".join(f"{m['test_acc']:.4f}" for m in result["members"]) if name != "all" else ""
        if row == "mean of members":
            return f"{result['member_mean_test_acc']:.4f}"
        if row == "averaging":
            return "—" if bagged_only else f"{result['ensemble_test_acc']:.4f}"
        if row == "bagging":
            return f"{result['bagging']['test_acc']:.4f}" if result["bagging"] else "—"
        stacking = result["stacking"]
        return f"{stacking['test_acc']:.4f}" if "test_acc" in stacking else f"skipped: {stacking['skipped']}"

    lines = ["| | " + " | ".join(names[name] for name in groups) + " |", "| --- |" + " --- |" * len(groups)]
    for row in ("members", "mean of members", "averaging", "bagging", "stacking"):
        lines.append(f"| {row} | " + " | ".join(cell(name, row) for name in groups) + " |")
    val_images = next((g["stacking"]["val_images"] for g in groups.values() if "val_images" in g["stacking"]), 0)
    return [*lines, "", f"`{record['config']}`, 1 epoch per member ({record['member_s']:.0f} s each, a fresh process):"
            f" three `fit --seed_everything k` runs and `bag --members 3`, then `ensemble` on each group; test accuracy"
            f" on the {groups['all']['num_images']:,} test images; stacking fit on {val_images:,} validation"
            " images."]  # fmt: skip


def md_experiments(record: dict[str, Any]) -> list[str]:
    kfold, search = record["kfold"], record["search"]
    folds = ", ".join(f"{value:.4f}" for value in kfold["folds"])
    best = next((t for t in search["trials"] if t["state"] == "complete"), None)  # search.csv lists the best first

    def values(trial: dict[str, str]) -> str:  # the searched options by their last name: lr 0.00334, batch_size 64
        return ", ".join(f"{key.split('.')[-1]} {float(trial[key]):.3g}" for key in search["options"] if trial[key])

    found = f"best val/acc {float(best['val/acc']):.4f}: {values(best)} (trial {best['trial']})" if best else "none"
    trials = sorted(search["trials"], key=lambda t: int(t["trial"]))
    states = ", ".join(f"{t['trial']} {t['state']}" for t in trials)
    return [
        "| command | result | wall time |",
        "| --- | --- | ---: |",
        f"| `lightning-cnn kfold {kfold['command']}` | val/acc {kfold['mean']['val/acc']:.4f} ±"
        f" {kfold['std']['val/acc']:.4f} (folds {folds}) | {kfold['seconds']:.0f} s |",
        f"| `lightning-cnn search {search['command']}` | {found}; trials {states} | {search['seconds']:.0f} s |",
    ]


def md_predict_export(record: dict[str, Any]) -> list[str]:
    diffs = ", ".join(f"{kind} {diff:.1e}" for kind, diff in record["export_max_abs_diff"].items())
    return [
        f"`lightning-cnn fit --config {record['config']} --trainer.max_epochs 1` on a JPEG-compressed copy of CIFAR-10"
        f" (lossy: not comparable with CIFAR-10 results): test/acc {record['test_acc']:.4f}. `lightning-cnn"
        f" predict-files` on its {record['files']:,} unpacked test files: {record['predicted']:,} predicted, accuracy"
        f" against the folder names {record['predict_acc']:.4f}, in {record['predict_s']:.0f} s (the whole command)."
        f" `lightning-cnn export --torchscript` of the run: largest absolute difference from PyTorch {diffs}."
    ]


TITLES = {
    "models": ("Models: parameters and FLOPs of every recipe", md_models),
    "recipe": ("The main recipe: LeNet-5 on MNIST, 3 epochs, per seed and torch threads", md_recipe),
    "mnist_recipes": ("MNIST recipes: test accuracy over seeds", md_mnist_recipes),
    "cifar_recipes": ("CIFAR-10 JPEG-copy recipes", md_cifar_recipes),
    "cifar_augment": ("Stronger augmentation on the CIFAR-10 JPEG copy, 10 epochs", md_cifar_augment),
    "overhead": ("Framework overhead (benchmarks/overhead.py)", md_overhead),
    "instructions": ("Framework overhead in instructions (benchmarks/instructions.py)", md_instructions),
    "pipeline": ("Input pipeline (benchmarks/pipeline.py)", md_pipeline),
    "end_to_end": ("One epoch end to end (benchmarks/end_to_end.py)", md_end_to_end),
    "memory": ("Peak memory of a full fit (benchmarks/memory.py)", md_memory),
    "augmentations": ("Augmentations and policies against kornia and torchvision v2", md_augmentations),
    "plain_logs": ("Logs in a file", md_plain_logs),
    "parallel_search": ("Parallel search: 1 worker against 2", md_parallel_search),
    "report": ("A trained run's test metrics and the report's cost", md_report),
    "loggers": ("Four loggers at once", md_loggers),
    "ensembles": ("Ensembles, bagging and stacking", md_ensembles),
    "experiments": ("k-fold and search", md_experiments),
    "predict_export": ("Predicting image files and exporting", md_predict_export),
    **{name: title for suite in SUITES for name, title in suite.TITLES.items()},
}


def measured_recipes(parts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each recipe's lowest test accuracy over every run the recipe and time-to-accuracy parts measured, by its
    packaged name (``mnist/lenet5.yaml``): what ``lightning-cnn recipes`` shows."""
    accuracies: dict[str, list[float]] = {}
    for run in (parts.get("recipe") or {}).get("runs", []):
        accuracies.setdefault(run["config"], []).append(run["test_acc"])
    for part in ("mnist_recipes", "cifar_recipes"):
        for row in (parts.get(part) or {}).get("rows", []):
            found = row["test_acc"] if isinstance(row["test_acc"], list) else [row["test_acc"]]
            accuracies.setdefault(row["config"], []).extend(found)
    for part in ("mnist_speed", "cifar_speed"):  # our recipes as they are, each a full run timed to its target
        for row in (parts.get(part) or {}).get("rows", []):
            if row["name"].startswith("configs/"):
                accuracies.setdefault(row["name"], []).append(row["test_acc"])
    return {
        config.removeprefix("configs/"): {"test_acc": round(min(values), 4), "runs": len(values)}
        for config, values in sorted(accuracies.items())
    }


def markdown(results: dict[str, Any]) -> str:
    """The results as one Markdown page: the machine once, then one dated section per part."""
    m = results["machine"]
    gpus = ", ".join(m["gpus"]) or "none"
    quick = " (quick check: a few batches, not figures)" if results["quick"] else ""
    lines = [
        f"# Results{quick}",
        "",
        f"Machine: {m['summary']}; Python {m['python']}; GPU: {gpus}.",
        "",
        "Regenerate with `make results` (`python -m benchmarks.results`); every figure below comes from it.",
    ]
    for part in PARTS:
        record = results["parts"].get(part)
        if record is None:
            continue
        title, render = TITLES[part]
        lines += ["", f"## {title}", "", f"Measured {record['date']} in {record['wall_s']:.0f} s.", ""]
        lines += [f"Not measured: {record['skipped']}."] if "skipped" in record else render(record)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every part on a few batches (a check that it runs)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="the parts to run now")
    parser.add_argument("--recipes", nargs="+", choices=MNIST_RECIPES, default=list(MNIST_RECIPES),
                        help="the MNIST recipes that mnist_recipes runs now; the others keep their rows")  # fmt: skip
    parser.add_argument("--data_dir", type=Path, default=None, help="default: $LIGHTNING_CNN_DATA, else ./data")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    data_dir = (args.data_dir or Path(os.environ.get("LIGHTNING_CNN_DATA") or "data")).resolve()
    os.environ["LIGHTNING_CNN_DATA"] = str(data_dir)  # for this process's data modules and the fits it starts
    name = "cpu-quick" if args.quick else "cpu"
    common.DATA_OPTIONS.clear()
    common.DATA_OPTIONS.update(QUICK_DATA if args.quick else {})
    json_path, md_path = args.out / f"{name}.json", args.out / f"{name}.md"
    results = json.loads(json_path.read_text()) if json_path.is_file() else {"parts": {}}
    results |= {"machine": describe_machine(), "quick": args.quick}
    print(f"results: {', '.join(args.parts)}{' (quick)' if args.quick else ''}; data: {data_dir}\n"
          f"machine: {results['machine']['summary']}", flush=True)  # fmt: skip
    for part in args.parts:
        start = time.perf_counter()
        record: dict[str, Any] = {"date": today()}
        missing = missing_data(part, data_dir, args.quick)
        if missing:
            print(f"{part}: skipped, it {missing}", flush=True)
            record["skipped"] = missing
        else:
            print(f"{part}:", flush=True)
            seed()
            if part == "mnist_recipes":
                record |= part_mnist_recipes(args.quick, tuple(args.recipes))
                record = keep_earlier_rows(record, results["parts"].get(part))
            else:
                record |= RUNNERS[part](args.quick)
        record |= {"wall_s": time.perf_counter() - start}
        results["parts"][part] = record
        args.out.mkdir(parents=True, exist_ok=True)  # written after every part: hours of figures are not lost
        json_path.write_text(json.dumps(results, indent=1) + "\n")
        md_path.write_text(markdown(results))
        if not args.quick and args.out.resolve() == RESULTS.resolve():  # what `lightning-cnn recipes` shows
            MEASURED.write_text(json.dumps(measured_recipes(results["parts"]), indent=1) + "\n")
    print(f"wrote {md_path} and {json_path.name}")


if __name__ == "__main__":
    main()
