"""Time to accuracy: the wall seconds from a command's start until its model first reaches a target test accuracy,
for our recipes and plain-PyTorch baselines, side by side in one run.

    python -m benchmarks.time_to_accuracy [--parts mnist_speed cifar_speed cifar_tricks]

Each entry runs in a fresh process, timed from just before it starts. While it trains, ``TestCurve`` measures the
test split's accuracy at a few points, with the clock stopped while it does: so each entry gives a curve of test
accuracy against wall seconds, the first time it reached the target, and its final accuracy and wall time (start
to the test's figure, the curve's own evaluations left out).

- ``mnist_speed`` (target 99.0 %): ``configs/mnist/lenet5.yaml`` for each of ``MNIST_SEEDS``, and the PyTorch MNIST
  example's recipe (its network, Adadelta lr 1.0, StepLR γ 0.7, batch 64, its per-image transforms), tested after
  every epoch and stopped at the target or after its 14 epochs.
- ``cifar_speed`` (target 80 %, on the CIFAR-10 JPEG copy): ``configs/cifar10_jpeg/convnet_bn_dropout.yaml``, the
  fast recipe ``configs/cifar10_jpeg/fast.yaml`` for seeds 42 and 1, its 15-minute version ``fast_long.yaml``, and
  the PyTorch CIFAR-10 tutorial's recipe (its network, SGD lr 0.001 momentum 0.9, batch 4, 2 epochs).
- ``cifar_tricks`` (target 80 %): ``configs/cifar10_jpeg/fast.yaml`` with each of ``TRICKS`` in turn (no label
  smoothing, its schedule, Lookahead, the whitening init, test-time augmentation), one seed.

``benchmarks.results`` runs these as parts of ``make results`` and renders them with ``TITLES``; each part draws
its curves into ``docs/time-to-accuracy-mnist.png`` or ``-cifar.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import CIFAR_JPEG, ROOT, TutorialDataset, added_environment, machine, python_process
from benchmarks.workflows import metrics_json, run_folders

START_ENV = "TIME_TO_ACCURACY_START"  # the parent's time.time() just before the process started
CURVE_ENV = "TIME_TO_ACCURACY_CURVE"  # the JSON-lines file the curve's points are appended to
FIGURES = ROOT / "docs"
MNIST_TARGET, CIFAR_TARGET = 0.99, 0.80
# our recipes, each over its seeds; the first is the one the others' walls are compared with
MNIST_RECIPES = {"configs/mnist/lenet5.yaml": (42, 1)}
CIFAR_RECIPES = {
    "configs/cifar10_jpeg/convnet_bn_dropout.yaml": (42,),
    "configs/cifar10_jpeg/fast.yaml": (42, 1),
    "configs/cifar10_jpeg/fast_long.yaml": (42,),
}
# the speed-run tricks, one at a time, on top of the fast CIFAR recipe (its seed): which of them pay on this machine
TRICKS_RECIPE = "configs/cifar10_jpeg/fast.yaml"
TRICKS = {
    "the recipe (label smoothing 0.1)": [],
    "no label smoothing": ["--model.label_smoothing", "0"],
    "+ label-smoothing schedule 0.2 → 0": ["--config", "configs/callbacks/label_smoothing.yaml"],
    "+ Lookahead (k 5, α 0.5)": ["--config", "configs/callbacks/lookahead.yaml"],
    "+ whitening init of the first conv": ["--config", "configs/callbacks/whitening.yaml"],
    "+ test-time flip and shift averaging": ["--tta", "true"],
}
MNIST_POINTS, CIFAR_POINTS = 4, 1  # test evaluations per epoch of our recipes (a few epochs, or many)
QUIET = ["--trainer.enable_progress_bar", "false"]


class TestCurve(L.Callback):
    """At ``points`` evenly spaced batches of every training epoch, the test split's accuracy and the wall seconds
    since the process started, less the time these evaluations took; appended as JSON lines to ``$CURVE_ENV``.

    Args:
        points: evaluations per epoch.
        max_images: test images evaluated (all: 0); quick checks take a few.
    """

    def __init__(self, points: int = MNIST_POINTS, max_images: int = 0) -> None:
        self.points = points
        self.max_images = max_images
        self.paused = 0.0  # seconds spent evaluating

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        batches, index = trainer.num_training_batches, args[-1]
        marks = {round((i + 1) * batches / self.points) - 1 for i in range(self.points)}
        if index in marks:
            self.evaluate(trainer, pl_module)

    @torch.no_grad()
    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        began = time.time()
        wall = began - float(os.environ[START_ENV]) - self.paused
        dm = trainer.datamodule
        if dm.test_set is None:
            dm.setup("test")
        images, labels = dm.test_set.images, dm.test_set.labels
        if self.max_images:
            images, labels = images[: self.max_images], labels[: self.max_images]
        pl_module.eval()
        correct = 0
        for start in range(0, len(labels), 1000):
            batch = (
                images[start : start + 1000].to(pl_module.device),
                labels[start : start + 1000].to(pl_module.device),
            )
            x, y = dm.prepare_batch(batch, train=False)
            correct += int((pl_module(x).argmax(1) == y).sum())
        pl_module.train()
        self.paused += time.time() - began
        point = {"wall": wall, "acc": correct / len(labels), "step": trainer.global_step, "paused": self.paused}
        with open(os.environ[CURVE_ENV], "a") as f:
            f.write(json.dumps(point) + "\n")


def read_curve(path: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def first_reached(curve: list[dict[str, float]], target: float) -> float | None:
    """The wall seconds of the curve's first point at or above ``target``; None if it never got there."""
    return next((point["wall"] for point in curve if point["acc"] >= target), None)


def timed(command: list[str], curve: Path, in_process: bool) -> float:
    """Run ``command`` (a fresh Python process: its arguments after ``python``) with the curve's environment; its
    wall seconds. ``in_process`` (quick checks) runs ``-m lightning_cnn`` commands in this process."""
    env = {START_ENV: repr(time.time()), CURVE_ENV: str(curve)}
    if in_process and command[:2] == ["-m", "lightning_cnn"]:
        from benchmarks.workflows import lightning_cnn

        return lightning_cnn(*command[2:], env=env, in_process=True)
    if in_process:  # a plain baseline, a few batches
        with added_environment(env):
            began = time.perf_counter()
            plain_main(command[2:])
            return time.perf_counter() - began
    return python_process(command, env)


def our_recipe(
    config: str, seed: int, target: float, points: int, extra: list[str], in_process: bool
) -> dict[str, Any]:
    """``fit --config CONFIG`` with its test, from a fresh process, with the test curve at ``points`` per epoch."""
    quick = ["--trainer.callbacks.max_images", "64"] if in_process else []
    with tempfile.TemporaryDirectory() as tmp:
        curve = Path(tmp) / "curve.jsonl"
        command = ["-m", "lightning_cnn", "fit", "--config", config, "--seed_everything", str(seed), *QUIET,
                   "--trainer.default_root_dir", tmp, *extra,
                   "--trainer.callbacks+=benchmarks.time_to_accuracy.TestCurve", "--trainer.callbacks.points",
                   str(points), *quick]  # fmt: skip
        seconds = timed(command, curve, in_process)
        measured = read_curve(curve)
        metrics = metrics_json(run_folders(Path(tmp))[-1])
    test_acc = metrics.get("test/tta_acc", metrics["test/acc"])  # with --tta true, the figure its user gets
    paused = measured[-1]["paused"] if measured else 0.0
    return {"name": config, "seed": seed, "wall": seconds - paused, "test_acc": test_acc,
            "reached": first_reached(measured, target), "curve": measured}  # fmt: skip


def plain_baseline(kind: str, target: float, in_process: bool) -> dict[str, Any]:
    """A plain-PyTorch baseline (``mnist_example`` or ``cifar_tutorial``) in a fresh process, tested every epoch."""
    with tempfile.TemporaryDirectory() as tmp:
        curve = Path(tmp) / "curve.jsonl"
        quick = ["--batches", "3", "--test_images", "64"] if in_process else []
        command = ["-m", "benchmarks.time_to_accuracy", "--plain", kind, "--target", str(target), *quick]
        seconds = timed(command, curve, in_process)
        points = read_curve(curve)
    paused = points[-1]["paused"] if points else 0.0
    final = points[-1]["acc"] if points else float("nan")
    return {"name": PLAIN[kind][0], "seed": 1, "wall": seconds - paused, "test_acc": final,
            "reached": first_reached(points, target), "curve": points}  # fmt: skip


# --- the plain-PyTorch baselines, as their authors wrote them -------------------------------------------------
class ExampleNet(nn.Module):
    """The network of the PyTorch MNIST example (pytorch/examples, mnist/main.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = self.dropout2(F.relu(self.fc1(torch.flatten(self.dropout1(x), 1))))
        return F.log_softmax(self.fc2(x), dim=1)


class TutorialNet(nn.Module):
    """The network of the PyTorch CIFAR-10 tutorial ("Training a classifier")."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv2(self.pool(F.relu(self.conv1(x))))))
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))))


def plain_mnist() -> tuple[nn.Module, Any, Any, Callable, int, int, tuple[float, ...], tuple[float, ...]]:
    from lightning_cnn.data import MNISTDataModule

    dm = MNISTDataModule(download=False)
    dm.prepare_data()
    model = ExampleNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    return model, dm, optimizer, schedule, 64, 14, (0.1307,), (0.3081,)  # type: ignore[return-value]


def plain_cifar() -> tuple[nn.Module, Any, Any, Any, int, int, tuple[float, ...], tuple[float, ...]]:
    from lightning_cnn.data import ImageFolderDataModule

    dm = ImageFolderDataModule(root=CIFAR_JPEG, train_dir="train", test_dir="test")
    dm.prepare_data()
    model = TutorialNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    return model, dm, optimizer, None, 4, 2, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


PLAIN = {  # kind: (its name in the tables, what builds it)
    "mnist_example": ("PyTorch MNIST example (plain PyTorch)", plain_mnist),
    "cifar_tutorial": ("PyTorch CIFAR-10 tutorial (plain PyTorch)", plain_cifar),
}


def plain_main(argv: list[str]) -> None:
    """Train a plain-PyTorch baseline: every training image (no validation split), the authors' per-image PIL
    transforms in a DataLoader, the test split after every epoch (the clock stopped), until the target."""
    from torch.utils.data import DataLoader
    from torchvision import transforms

    parser = argparse.ArgumentParser()
    parser.add_argument("--plain", choices=list(PLAIN), required=True)
    parser.add_argument("--target", type=float, required=True)
    parser.add_argument("--batches", type=int, default=0, help="training batches per epoch (all: 0)")
    parser.add_argument("--test_images", type=int, default=0, help="test images (all: 0)")
    args = parser.parse_args(argv)
    torch.manual_seed(1)
    model, dm, optimizer, schedule, batch_size, epochs, mean, std = PLAIN[args.plain][1]()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    train = DataLoader(TutorialDataset(*dm.load_checked_split(train=True), transform), batch_size, shuffle=True)
    test_images, test_labels = dm.load_checked_split(train=False)
    if args.test_images:
        test_images, test_labels = test_images[: args.test_images], test_labels[: args.test_images]
    test_x = (test_images.float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    paused = 0.0
    for _ in range(epochs):
        model.train()
        for i, (x, y) in enumerate(train):
            if args.batches and i >= args.batches:
                break
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()  # the example's nll_loss of log_softmax: the same loss
            optimizer.step()
        if schedule is not None:
            schedule.step()
        began = time.time()
        wall = began - float(os.environ[START_ENV]) - paused
        model.eval()
        with torch.no_grad():
            batches = zip(test_x.split(1000), test_labels.split(1000), strict=True)
            acc = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches) / len(test_labels)
        paused += time.time() - began
        with open(os.environ[CURVE_ENV], "a") as f:
            f.write(json.dumps({"wall": wall, "acc": acc, "paused": paused}) + "\n")
        if acc >= args.target:
            break


# --- the parts ------------------------------------------------------------------------------------------------
def speed(
    recipes: dict[str, tuple[int, ...]],
    plain: str,
    target: float,
    points: int,
    extra: list[str],
    in_process: bool,
    figure: str,
) -> dict[str, Any]:
    """Each recipe over its seeds, then the plain baseline (a quick check: the first seed, a few batches)."""
    rows = [our_recipe(config, seed, target, points, extra, in_process)
            for config, seeds in recipes.items() for seed in (seeds[:1] if in_process else seeds)]  # fmt: skip
    rows.append(plain_baseline(plain, target, in_process))
    record = {"target": target, "standard": next(iter(recipes)), "rows": rows}
    if not in_process:
        draw(figure, record, FIGURES / f"time-to-accuracy-{'mnist' if plain == 'mnist_example' else 'cifar'}.png")
    return record


def mnist_speed(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    return speed(MNIST_RECIPES, "mnist_example", MNIST_TARGET, MNIST_POINTS, extra, in_process, "MNIST")


def cache_cifar_jpeg(in_process: bool) -> None:
    """Decode the CIFAR-10 JPEG copy into its cache before any entry starts, so that no entry pays for decoding."""
    from lightning_cnn.data import ImageFolderDataModule

    ImageFolderDataModule(root=CIFAR_JPEG, train_dir="train", test_dir="test", val_size=0.2 if in_process else 5000
                          ).setup()  # fmt: skip


def cifar_speed(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """The CIFAR-10 JPEG-copy entries."""
    cache_cifar_jpeg(in_process)
    return speed(CIFAR_RECIPES, "cifar_tutorial", CIFAR_TARGET, CIFAR_POINTS, extra, in_process, "CIFAR-10 JPEG copy")


def cifar_tricks(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """The fast CIFAR recipe with each of ``TRICKS`` in turn, one seed: the time to 80 % and the final accuracy."""
    cache_cifar_jpeg(in_process)
    seed = CIFAR_RECIPES[TRICKS_RECIPE][0]
    rows = [our_recipe(TRICKS_RECIPE, seed, CIFAR_TARGET, CIFAR_POINTS, [*more, *extra], in_process) | {"name": name}
            for name, more in TRICKS.items()]  # fmt: skip
    return {"target": CIFAR_TARGET, "standard": next(iter(TRICKS)), "rows": rows}


PARTS: dict[str, Callable[[list[str], bool], dict[str, Any]]] = {
    "mnist_speed": mnist_speed,
    "cifar_speed": cifar_speed,
    "cifar_tricks": cifar_tricks,
}
NEEDS_MNIST = ("mnist_speed",)
NEEDS_CIFAR_JPEG = ("cifar_speed", "cifar_tricks")


# --- Markdown and the figure ----------------------------------------------------------------------------------
def md_speed(record: dict[str, Any]) -> list[str]:
    target = record["target"]
    standard = next(row["wall"] for row in record["rows"] if row["name"] == record["standard"])
    shown = f"`{record['standard']}`" if record["standard"].startswith("configs/") else record["standard"]
    lines = [
        f"| entry | seed | time to {100 * target:.0f} % | final test accuracy | wall time | × {shown}'s wall |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in record["rows"]:
        reached = f"{row['reached']:.1f} s" if row["reached"] is not None else "not reached"
        name = f"`{row['name']}`" if row["name"].startswith("configs/") else row["name"]
        lines.append(f"| {name} | {row['seed']} | {reached} | {100 * row['test_acc']:.2f} % | {row['wall']:.1f} s |"
                     f" {row['wall'] / standard:.2f} |")  # fmt: skip
    return [
        *lines,
        "",
        "Each entry is one fresh process, timed from its start to its test figure; the time to the target is the first"
        " of the test accuracies measured along the way (the clock stopped while measuring them)"
        + (
            "; the CIFAR entries train on a JPEG-compressed copy of CIFAR-10 (lossy: not comparable with CIFAR-10"
            " results)."
            if target == CIFAR_TARGET
            else "."
        ),
    ]


def draw(title: str, record: dict[str, Any], path: Path) -> None:
    """Test accuracy against wall seconds, one line per entry (the first seed of each), into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(6.5, 4))
    drawn = set()
    for row in record["rows"]:
        if row["name"] in drawn or not row["curve"]:
            continue
        drawn.add(row["name"])
        ax.plot([p["wall"] for p in row["curve"]], [100 * p["acc"] for p in row["curve"]], marker=".",
                label=row["name"].removeprefix("configs/"))  # fmt: skip
    ax.axhline(100 * record["target"], color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlabel="wall seconds from the command's start", ylabel="test accuracy (%)", title=title, xscale="log")
    ax.xaxis.set_major_formatter(ScalarFormatter())  # 10, 100, 1000 rather than powers of ten; minor ticks unlabelled
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(100 * record["target"] - (4 if record["target"] > 0.95 else 30), 100)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


TITLES: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "mnist_speed": ("Time to 99 % on MNIST: our recipe and the PyTorch example", md_speed),
    "cifar_speed": ("Time to 80 % on the CIFAR-10 JPEG copy: our recipes and the PyTorch tutorial", md_speed),
    "cifar_tricks": (f"The speed-run tricks one at a time on `{TRICKS_RECIPE}`", md_speed),
}


def main() -> None:
    if "--plain" in sys.argv:
        plain_main(sys.argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    args = parser.parse_args()
    print(f"time to accuracy: {', '.join(args.parts)}\nmachine: {machine()}")
    for name in args.parts:
        print("\n".join(TITLES[name][1](PARTS[name]([], False))), flush=True)


if __name__ == "__main__":
    main()
