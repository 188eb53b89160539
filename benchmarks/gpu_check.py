"""The one-shot GPU check: everything a first GPU machine should measure, in one command, within 8 minutes.

    python -m benchmarks.gpu_check            # on the GPU(s); writes benchmarks/results/gpu-<device>.{json,md}
    python -m benchmarks.gpu_check --smoke    # every cell on the CPU, a few steps on tiny synthetic data

Cells, in this order (later ones are skipped, and say so, when the time budget is spent):
1. images/s of ``lightning_cnn fit`` and of a plain PyTorch loop, same GPU, same in-memory synthetic CIFAR-shaped
   data, for ResNet-18 and FastCIFARNet, in 32-true (TF32 matmuls), bf16-mixed and 16-mixed, channels_last
   off/on, torch.compile off (then, last, on: compiling costs most of the budget); peak GPU memory of each;
2. our batched augmentation on the device vs the tutorial pipeline (PIL transforms in DataLoader workers);
3. the fast recipes' training time to a target validation accuracy (94 %, airbench's), each of ``FAST_RECIPES``
   on CIFAR-10 if present, else on the CIFAR-10 JPEG copy (``$LIGHTNING_CNN_DATA``, else ./data); skipped,
   saying so, when neither is there;
4. DDP over all visible GPUs vs one (images/s and scaling efficiency), with two or more GPUs.
Ours and the plain loop run one after the other in this process; each figure is the steady state after
warm-up steps (compilation happens there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor

from benchmarks.common import CIFAR_JPEG, ROOT, machine, tutorial_loader
from lightning_cnn.data import CIFAR10DataModule, ImageDataModule, resolve_data_dir
from lightning_cnn.data.augment import HorizontalFlip, RandomCrop

MODELS = {"ResNet18": "ResNet18", "FastCIFARNet": "FastCIFARNet"}
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
BUDGET_S = 470  # under the 8 minutes promised, with room for writing the results
COMPILE_CELL_S = 75  # what one compile-on cell may take: started only while that much budget is left
RECIPE_CELL_S = 60  # what one fast recipe's time-to-target cell may take, likewise
# the fast CIFAR recipes whose time to TARGET the check measures (their data swapped for the dataset found)
FAST_RECIPES = tuple(
    ROOT / "configs" / path
    for path in ("cifar10/fast_net.yaml", "cifar10_jpeg/fast.yaml", "cifar10_jpeg/fast_long.yaml")
)
TARGET = 0.94  # airbench's test accuracy on CIFAR-10, here on the validation split


class SyntheticImages(ImageDataModule):
    """Random CIFAR-shaped uint8 images in memory: throughput needs no dataset (``--data.size`` images)."""

    name = "synthetic CIFAR-shaped images"
    num_classes = 10
    input_shape = (3, 32, 32)
    mean = (0.49, 0.48, 0.45)
    std = (0.25, 0.24, 0.26)
    classes = tuple(str(i) for i in range(10))

    def __init__(self, size: int = 2048, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = size

    def files_present(self) -> bool:
        return True

    def expected_files(self) -> str:
        return "nothing (generated)"

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(0 if train else 1)
        n = self.size if train else max(self.size // 8, 2)
        return torch.randint(0, 256, (n, *self.input_shape), generator=g, dtype=torch.uint8), torch.randint(
            0, 10, (n,), generator=g
        )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class SteadyTimer(L.Callback):
    """Images/s of the training batches after ``warmup`` batches (compilation and cuDNN autotuning happen there);
    with ``output``, rank 0 writes ``{"images_per_s": ...}`` there (DDP runs in a child process)."""

    def __init__(self, warmup: int = 5, output: str | None = None) -> None:
        self.warmup, self.output = warmup, output
        self.start, self.images, self.images_per_s = 0.0, 0, 0.0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int):
        if batch_idx == self.warmup:
            sync(pl_module.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int):
        if batch_idx >= self.warmup:
            self.images += len(batch[1]) * trainer.world_size
        if batch_idx == trainer.num_training_batches - 1 and self.images:
            sync(pl_module.device)
            self.images_per_s = self.images / (time.perf_counter() - self.start)
            if self.output and trainer.is_global_zero:
                Path(self.output).write_text(json.dumps({"images_per_s": self.images_per_s}))


class ChannelsLast(L.Callback):
    """Our models have no channels_last option: convert the module and every batch to it."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.to(memory_format=torch.channels_last)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int):
        batch[0].data = batch[0].contiguous(memory_format=torch.channels_last)


class TimeToTarget(L.Callback):
    """Training seconds (from the first batch) until val/acc first reaches ``target``; then stops the run."""

    def __init__(self, target: float) -> None:
        self.target, self.start = target, 0.0
        self.reached: dict[str, float] | None = None
        self.history: list[tuple[int, float, float]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or "val/acc" not in trainer.callback_metrics:
            return
        accuracy = float(trainer.callback_metrics["val/acc"])
        seconds = time.perf_counter() - self.start
        self.history.append((trainer.current_epoch + 1, round(seconds, 2), round(accuracy, 4)))
        if self.reached is None and accuracy >= self.target:
            self.reached = {"epoch": trainer.current_epoch + 1, "seconds": seconds, "val_acc": accuracy}
            trainer.should_stop = True


def model_options(name: str, smoke: bool) -> list[str]:
    """A small FastCIFARNet for the smoke run; the real sizes otherwise."""
    return ["--model.widths", "[8, 8, 8]"] if smoke and name == "FastCIFARNet" else []


def ours(name: str, precision: str, compiled: bool, channels_last: bool, cfg: dict[str, Any]) -> float:
    """Images/s of ``lightning_cnn fit`` (the CLI, our module, data module and callbacks) on synthetic data."""
    from lightning_cnn.cli import cli_main

    timer = SteadyTimer(cfg["warmup"])
    callbacks: list[L.Callback] = [timer, *([ChannelsLast()] if channels_last else [])]
    with tempfile.TemporaryDirectory() as tmp:
        cli_main(
            ["fit", "--model", MODELS[name], *model_options(name, cfg["smoke"]), "--model.optimizer", "torch.optim.SGD",
             "--model.optimizer.lr", "0.01", "--model.optimizer.momentum", "0.9", "--model.compile", str(compiled),
             "--data", "benchmarks.gpu_check.SyntheticImages", "--data.size", str(cfg["batch"] * (cfg["steps"] + 1)),
             "--data.batch_size", str(cfg["batch"]), "--data.val_size", str(cfg["batch"]), "--trainer.max_epochs", "1",
             "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
             "--trainer.accelerator", cfg["accelerator"], "--trainer.devices", "1", "--trainer.precision", precision,
             "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
             "--trainer.default_root_dir", tmp, "--preview.num_images", "0", "--test_after_fit", "false"],
            callbacks=callbacks,
        )  # fmt: skip
    return timer.images_per_s


def plain(name: str, precision: str, compiled: bool, channels_last: bool, cfg: dict[str, Any]) -> float:
    """Images/s of the textbook loop: the same network and batches, autocast (and a grad scaler for fp16)."""
    from lightning_cnn.models import MODELS as REGISTRY

    device = cfg["device"]
    options = {"widths": [8, 8, 8]} if cfg["smoke"] and name == "FastCIFARNet" else {}
    module = REGISTRY[name](num_classes=10, input_shape=(3, 32, 32), **options)
    net = module.net.to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = torch.compile(net) if compiled else net
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    data = SyntheticImages(size=cfg["batch"] * (cfg["steps"] + 1), val_size=cfg["batch"])
    data.setup("fit")
    images, labels = data.train_set.images.to(device), data.train_set.labels.to(device)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    net.train()
    start = 0.0
    for step in range(cfg["steps"]):
        if step == cfg["warmup"]:
            sync(device)
            start = time.perf_counter()
        batch = slice(step * cfg["batch"], (step + 1) * cfg["batch"])
        x = data.normalize(images[batch].float().div_(255))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    sync(device)
    return (cfg["steps"] - cfg["warmup"]) * cfg["batch"] / (time.perf_counter() - start)


def peak_memory(run: Callable[[], float], device: torch.device) -> tuple[float, float | None]:
    """What ``run`` returns and the peak GPU memory it allocated, in MiB (``None`` on the CPU)."""
    if device.type != "cuda":
        return run(), None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    value = run()
    return value, torch.cuda.max_memory_allocated(device) / 2**20


def throughput_cells(cfg: dict[str, Any], compiled: bool, left: Callable[[], float]) -> list[dict[str, Any]]:
    """One row per (model, precision, channels_last) for ``compiled``: ours, plain, the ratio, peak memory."""
    rows = []
    for name in MODELS:
        for precision in PRECISIONS:
            for channels_last in (False, True):
                row: dict[str, Any] = {
                    "model": name, "precision": precision, "compile": compiled, "channels_last": channels_last,
                }  # fmt: skip
                run_precision = precision
                if precision == "16-mixed" and cfg["device"].type == "cpu":
                    run_precision = "bf16-mixed"  # fp16 autocast needs CUDA; the smoke run checks the wiring
                    row["note"] = "16-mixed needs CUDA: ran bf16-mixed on the CPU"
                if compiled and left() < (5 if cfg["smoke"] else COMPILE_CELL_S):
                    row["skipped"] = "time budget spent"
                    rows.append(row)
                    continue
                try:
                    args = (name, run_precision, compiled, channels_last, cfg)
                    row["ours_images_per_s"], row["ours_peak_mib"] = peak_memory(lambda a=args: ours(*a), cfg["device"])
                    row["plain_images_per_s"], row["plain_peak_mib"] = peak_memory(
                        lambda a=args: plain(*a), cfg["device"]
                    )
                    row["ratio"] = row["ours_images_per_s"] / row["plain_images_per_s"]
                except Exception as err:  # one failing cell (e.g. a compiler missing) must not lose the others
                    row["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"
                rows.append(row)
                print(f"  {row}", flush=True)
    return rows


def augmentation_cell(cfg: dict[str, Any]) -> dict[str, Any]:
    """Images/s of our crop + flip on the device (uint8 batches in memory) vs the tutorial's PIL transforms in
    DataLoader workers, the batches moved to the device."""
    device, batch, steps = cfg["device"], cfg["batch"], cfg["steps"]
    dm = SyntheticImages(
        size=batch * (steps + 1), batch_size=batch, val_size=batch, augment=[RandomCrop(4), HorizontalFlip()]
    )
    dm.setup("fit")
    sync(device)
    start = time.perf_counter()
    seen = 0
    for images, labels in dm.train_dataloader():  # noqa: B007
        x, _ = dm.prepare_batch((images.to(device, non_blocking=True), labels.to(device)), train=True)
        seen += len(x)
    sync(device)
    ours_ips = seen / (time.perf_counter() - start)
    workers = 0 if cfg["smoke"] else min(8, os.cpu_count() or 1)
    start, seen = time.perf_counter(), 0
    for images, _labels in tutorial_loader(dm, batch_size=batch, workers=workers):
        seen += len(images.to(device, non_blocking=True))
    sync(device)
    tutorial_ips = seen / (time.perf_counter() - start)
    return {
        "ours_images_per_s": ours_ips, "tutorial_images_per_s": tutorial_ips, "ratio": ours_ips / tutorial_ips,
        "tutorial_workers": workers, "images": seen,
    }  # fmt: skip


def real_data() -> tuple[str, list[str]] | None:
    """The dataset for the time-to-accuracy cell and the data section that selects it, or ``None``."""
    if CIFAR10DataModule(download=False).files_present():
        return "CIFAR-10", []
    for folder in (Path.cwd(), resolve_data_dir(None)):
        if (folder / CIFAR_JPEG).is_file():
            return "the CIFAR-10 JPEG copy (lossy)", [str(folder / CIFAR_JPEG)]
    return None


def recipe_data(recipe: dict[str, Any], archive: list[str]) -> dict[str, Any]:
    """The recipe's data section for the dataset found: CIFAR-10 (no ``archive``) or the JPEG copy at ``archive[0]``,
    with the recipe's own batch size and augmentations."""
    own = recipe["data"].get("init_args", {})
    kept = {key: own[key] for key in ("batch_size", "augment") if key in own}
    if archive:
        return {
            "class_path": "lightning_cnn.data.ImageFolderDataModule",
            "init_args": {"root": archive[0], "train_dir": "train", "test_dir": "test", "image_size": 32, **kept},
        }
    return {"class_path": "lightning_cnn.data.CIFAR10DataModule", "init_args": kept}  # fmt: skip


def time_to_target(cfg: dict[str, Any], target: float, recipe_path: Path) -> dict[str, Any]:
    """A fast recipe until val/acc >= ``target`` or its last epoch (bf16 on a GPU)."""
    from lightning_cnn.cli import cli_main

    recipe = yaml.safe_load(recipe_path.read_text())
    extra: list[str] = []
    name = str(recipe_path.relative_to(ROOT))
    if cfg["smoke"]:
        dataset = "synthetic (smoke run: the path only)"
        recipe["data"] = {"class_path": "benchmarks.gpu_check.SyntheticImages", "init_args": {"size": 64}}
        if recipe["model"]["class_path"].endswith("FastCIFARNet"):
            recipe["model"]["init_args"]["widths"] = [8, 8, 8]
        extra = ["--data.batch_size", "16", "--data.val_size", "16", "--trainer.max_epochs", "1"]
    else:
        found = real_data()
        if found is None:
            return {"recipe": name, "skipped": f"no dataset: neither CIFAR-10 nor {CIFAR_JPEG} under"
                    " $LIGHTNING_CNN_DATA or ./data"}  # fmt: skip
        dataset, archive = found
        recipe["data"] = recipe_data(recipe, archive)
    timer = TimeToTarget(target)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "recipe.yaml"
        config.write_text(yaml.safe_dump(recipe))
        start = time.perf_counter()
        cli_main(
            ["fit", "--config", str(config), *extra, "--trainer.accelerator", cfg["accelerator"],
             "--trainer.devices", "1", "--trainer.precision", "bf16-mixed", "--trainer.enable_progress_bar", "false",
             "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", tmp,
             "--preview.num_images", "0", "--test_after_fit", "false"],
            callbacks=[timer],
        )  # fmt: skip
    return {
        "recipe": name, "dataset": dataset, "target_val_acc": target, "reached": timer.reached,
        "per_epoch": timer.history, "wall_s_with_data_loading": time.perf_counter() - start,
    }  # fmt: skip


def ddp_cell(cfg: dict[str, Any], devices: int) -> dict[str, Any]:
    """ResNet-18 images/s (bf16-mixed on GPUs) with ``devices`` DDP processes vs one, each a child ``fit``."""
    result: dict[str, Any] = {"devices": devices}
    for count in (1, devices):
        with tempfile.TemporaryDirectory() as tmp:
            output = Path(tmp) / "timer.json"
            per_process = cfg["batch"] * cfg["steps"]
            command = [
                sys.executable, "-m", "lightning_cnn", "fit", "--model", "ResNet18", "--model.optimizer",
                "torch.optim.SGD", "--model.optimizer.lr", "0.01", "--data", "benchmarks.gpu_check.SyntheticImages",
                "--data.size", str((per_process + cfg["batch"]) * count), "--data.batch_size", str(cfg["batch"]),
                "--data.val_size", str(cfg["batch"] * count), "--trainer.max_epochs", "1",
                "--trainer.limit_val_batches", "0",
                "--trainer.num_sanity_val_steps", "0", "--trainer.accelerator", cfg["accelerator"],
                "--trainer.devices", str(count), "--trainer.strategy", "ddp" if count > 1 else "auto",
                "--trainer.precision", "bf16-mixed", "--trainer.enable_progress_bar", "false",
                "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", tmp,
                "--preview.num_images", "0", "--test_after_fit", "false",
                "--trainer.callbacks+=benchmarks.gpu_check.SteadyTimer",
                f"--trainer.callbacks.warmup={cfg['warmup']}", f"--trainer.callbacks.output={output}",
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
            if done.returncode != 0 or not output.is_file():
                return {**result, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
            result[f"images_per_s_{count}"] = json.loads(output.read_text())["images_per_s"]
    result["scaling_efficiency"] = result[f"images_per_s_{devices}"] / (devices * result["images_per_s_1"])
    return result


def device_name(smoke: bool) -> str:
    """A file-name-safe name for the results: the GPU's (e.g. ``nvidia-h200``), or ``cpu-smoke``."""
    if smoke or not torch.cuda.is_available():
        return "cpu-smoke"
    return "".join(c if c.isalnum() else "-" for c in torch.cuda.get_device_name(0).lower()).strip("-")


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables."""

    def fmt(value: Any, digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    lines = [f"# GPU check, {results['date']}", "", f"Machine: {results['machine']}", ""]
    lines += [
        "## Training images/s: `lightning_cnn fit` vs a plain PyTorch loop", "",
        f"Synthetic CIFAR-shaped data in memory, batch {results['batch']}, {results['steps']} steps of which"
        f" {results['warmup']} warm-up. Peak: GPU memory allocated (MiB).", "",
        "| model | precision | compile | channels_last | ours img/s | plain img/s | ours / plain | peak ours"
        " | peak plain | note |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]  # fmt: skip
    for r in results["throughput"]:
        note = r.get("skipped") or r.get("error") or r.get("note") or ""
        lines.append(
            f"| {r['model']} | {r['precision']} | {'on' if r['compile'] else 'off'} |"
            f" {'on' if r['channels_last'] else 'off'} | {fmt(r.get('ours_images_per_s'))} |"
            f" {fmt(r.get('plain_images_per_s'))} | {fmt(r.get('ratio'), 2)} | {fmt(r.get('ours_peak_mib'))} |"
            f" {fmt(r.get('plain_peak_mib'))} | {note} |"
        )
    aug = results["augmentation"]
    lines += ["", "## Augmentation (crop + flip): ours on the device vs the tutorial pipeline", ""]
    if "error" in aug or "skipped" in aug:
        lines.append(aug.get("error") or aug["skipped"])
    else:
        lines.append(
            f"ours {fmt(aug['ours_images_per_s'])} img/s, tutorial ({aug['tutorial_workers']} workers)"
            f" {fmt(aug['tutorial_images_per_s'])} img/s: {aug['ratio']:.1f}×"
        )
    lines += ["", "## The fast recipes: training time to the target validation accuracy", ""]
    for ttt in results["time_to_target"]:
        if "skipped" in ttt or "error" in ttt:
            lines += [f"`{ttt['recipe']}`: {ttt.get('skipped') or ttt['error']}", ""]
            continue
        reached = ttt["reached"]
        head = f"`{ttt['recipe']}` on {ttt['dataset']}, target val/acc {ttt['target_val_acc']:.2%}: "
        if reached:
            head += f"{reached['seconds']:.1f} s of training, epoch {reached['epoch']} ({reached['val_acc']:.2%})"
        else:
            head += "not reached"
        lines += [head, "", "per epoch (epoch, seconds, val/acc): " + ", ".join(map(str, ttt["per_epoch"])), ""]
    ddp = results["ddp"]
    lines += ["", "## DDP over all visible GPUs vs one", ""]
    if "skipped" in ddp or "error" in ddp:
        lines.append(ddp.get("skipped") or ddp["error"])
    else:
        n = ddp["devices"]
        lines.append(
            f"ResNet-18, bf16-mixed: 1 process {fmt(ddp['images_per_s_1'])} img/s, {n} processes"
            f" {fmt(ddp[f'images_per_s_{n}'])} img/s: scaling efficiency {ddp['scaling_efficiency']:.2f}"
        )
    return "\n".join(lines) + "\n"


def guarded(cell: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A cell's result, or its error as one line: one broken cell must not lose the others."""
    try:
        return cell()
    except Exception as err:
        return {"error": f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every cell on the CPU, a few steps, tiny data")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results"), help="folder for the results")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds before cells are skipped")
    parser.add_argument("--target", type=float, default=TARGET, help="the fast recipes' target validation accuracy")
    args = parser.parse_args(argv)
    if argv is None:
        sys.argv[1:] = []  # parsed: LightningCLI, called in this process, must not see these flags
    started = time.perf_counter()

    def left() -> float:
        return args.budget - (time.perf_counter() - started)

    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA GPU visible: run on a GPU machine, or --smoke for the CPU check of every cell")
        raise SystemExit(2)
    cuda = not args.smoke
    cfg: dict[str, Any] = {
        "smoke": args.smoke, "device": torch.device("cuda" if cuda else "cpu"),
        "accelerator": "gpu" if cuda else "cpu", "batch": 256 if cuda else 2, "steps": 40 if cuda else 2,
        "warmup": 10 if cuda else 1,
    }  # fmt: skip
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True  # 32-true means TF32 matmuls and convs on Ampere and later
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    # a CPU inductor build takes minutes: the smoke run checks the wiring of the compile cells, not the compiler
    with torch._dynamo.config.patch(disable=args.smoke):
        results = run_cells(cfg, args.target, left)
    results["seconds"] = time.perf_counter() - started
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    stem = output / f"gpu-{device_name(args.smoke)}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown(results))
    print(f"wrote {stem}.json and {stem}.md in {results['seconds']:.0f} s")
    return results


def run_cells(cfg: dict[str, Any], target: float, left: Callable[[], float]) -> dict[str, Any]:
    """Every cell, the compile-on throughput last; the results with the machine and the settings."""
    cuda = cfg["device"].type == "cuda"
    L.seed_everything(0, verbose=False)
    gpus = torch.cuda.device_count() if cuda else 0
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine() + (f", {gpus} × {torch.cuda.get_device_name(0)}" if gpus else ", no GPU (smoke)"),
        "python": platform.python_version(), "batch": cfg["batch"], "steps": cfg["steps"], "warmup": cfg["warmup"],
    }  # fmt: skip
    print("throughput, torch.compile off", flush=True)
    results["throughput"] = throughput_cells(cfg, compiled=False, left=left)
    print("augmentation", flush=True)
    results["augmentation"] = guarded(lambda: augmentation_cell(cfg))
    results["time_to_target"] = []
    for recipe in FAST_RECIPES:
        print(f"time to target: {recipe.name}", flush=True)
        name = str(recipe.relative_to(ROOT))
        if left() < RECIPE_CELL_S and not cfg["smoke"]:
            results["time_to_target"].append({"recipe": name, "skipped": "time budget spent"})
            continue
        results["time_to_target"].append({"recipe": name, **guarded(lambda r=recipe: time_to_target(cfg, target, r))})
    if cfg["smoke"] or gpus >= 2:
        print("DDP", flush=True)
        results["ddp"] = guarded(lambda: ddp_cell(cfg, max(gpus, 2)))
    else:
        results["ddp"] = {"skipped": f"{gpus} GPU visible: DDP scaling needs two or more"}
    print("throughput, torch.compile on", flush=True)
    results["throughput"] += throughput_cells(cfg, compiled=True, left=left)
    return results


if __name__ == "__main__":
    main()
