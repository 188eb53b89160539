"""Parameters and FLOPs per image of every registered model on MNIST and CIFAR-10 shapes, as a Markdown table.

    lightning-cnn models             # every registered model, default options
    lightning-cnn models --recipes   # the model of every packaged recipe, on its data

FLOPs are those of Lightning's model summary (its total FLOPs when ``fit`` starts, for the models' one-image
example input): ``torch.utils.flop_counter.FlopCounterMode`` on the forward pass of one image in eval mode, two per
multiply-add of the conv and linear layers (what dominates); activations, pooling and norms are not counted.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from lightning_cnn.config_files import PACKAGED, packaged_recipes
from lightning_cnn.data import DATAMODULES
from lightning_cnn.models import MODELS
from lightning_cnn.models.base import ImageClassifier
from lightning_cnn.tools.options import ToolParser

SHAPES = {"MNIST": (1, 28, 28), "CIFAR-10": (3, 32, 32)}


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def flops_per_image(model: torch.nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Forward-pass FLOPs for one image of ``input_shape`` (two per multiply-add), counted by PyTorch's FLOP counter
    as Lightning's model summary counts them."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape))
    return counter.get_total_flops()


def recipes(model_name: str, configs: Path = PACKAGED) -> list[str]:
    """The recipes under ``configs`` whose model is ``model_name``, as ``configs/...`` paths."""
    return [
        f"configs/{name}"
        for name, config in packaged_recipes(configs).items()
        if _class_name(config.get("model")) == model_name
    ]


def model_rows(models: dict[str, type[ImageClassifier]] = MODELS) -> list[dict[str, object]]:
    """One row per model: its name, and parameters and FLOPs for each dataset shape."""
    rows = []
    for name, cls in models.items():
        row: dict[str, object] = {"model": name}
        for dataset, shape in SHAPES.items():
            model = cls(num_classes=10, input_shape=shape)
            row[f"params {dataset}"] = count_parameters(model)
            row[f"FLOPs {dataset}"] = flops_per_image(model, shape)
        rows.append(row)
    return rows


def _class_name(section: object) -> str:
    class_path = section.get("class_path", "") if isinstance(section, dict) else section or ""
    return str(class_path).rsplit(".", 1)[-1]


def recipe_shape(data: Any) -> tuple[int, ...] | None:
    """The image shape of a recipe's data section: its data module's own (MNIST, CIFAR-10), or for a data module
    that sizes its images (an image folder) the shape its ``image_size`` and ``grayscale`` options give."""
    cls = DATAMODULES.get(_class_name(data))
    shape = getattr(cls, "input_shape", None)
    if cls is None or isinstance(shape, tuple):
        return shape
    shape_of = getattr(cls, "shape_of", None)
    if shape_of is None:
        return None
    options = {name: p.default for name, p in inspect.signature(cls).parameters.items()}
    options |= (data or {}).get("init_args") or {}
    return shape_of(options["image_size"], options["grayscale"])


def recipe_num_classes(data: Any) -> int:
    """The classes of a recipe's data module: its own count (100 for CIFAR-100's default fine labels), else 10 for
    one that learns its count from its files (an image folder)."""
    count = getattr(DATAMODULES.get(_class_name(data)), "num_classes", None)
    return count if isinstance(count, int) else 10


def recipe_rows(configs: Path = PACKAGED) -> list[dict[str, object]]:
    """One row per recipe (a YAML naming a registered model and a data module of known shape): the model built
    with the recipe's options on that shape, its parameters and FLOPs."""
    rows = []
    for name, config in packaged_recipes(configs).items():
        model_cls = MODELS.get(_class_name(config.get("model")))
        shape = recipe_shape(config.get("data"))
        if model_cls is None or shape is None:
            continue
        options = dict(config["model"].get("init_args") or {})
        options = {k: v for k, v in options.items() if k not in ("optimizer", "lr_scheduler")}
        model = model_cls(num_classes=recipe_num_classes(config.get("data")), input_shape=shape, **options)
        rows.append(
            {
                "recipe": f"configs/{name}",
                "model": model_cls.__name__,
                "shape": "×".join(map(str, shape)),
                "params": count_parameters(model),
                "FLOPs": flops_per_image(model, shape),
            }
        )
    return rows


def _flops(value: int) -> str:
    return f"{value / 1e9:.2f} G" if value >= 1e9 else f"{value / 1e6:.2f} M"


def markdown_table(rows: list[dict[str, object]]) -> str:
    """The rows as a Markdown table (parameters and FLOPs as ``MNIST / CIFAR-10``), with each model's recipes."""
    lines = [
        "| model | parameters (1×28×28 / 3×32×32) | FLOPs per image (1×28×28 / 3×32×32) | recipes |",
        "| --- | ---: | ---: | --- |",
    ]
    for row in rows:
        params = " / ".join(f"{row[f'params {d}']:,}" for d in SHAPES)
        flops = " / ".join(_flops(row[f"FLOPs {d}"]) for d in SHAPES)
        found = ", ".join(f"`{r}`" for r in recipes(str(row["model"]))) or "-"
        lines.append(f"| `{row['model']}` | {params} | {flops} | {found} |")
    return "\n".join(lines)


def recipe_table(rows: list[dict[str, object]]) -> str:
    """Recipe rows as a Markdown table."""
    lines = ["| recipe | model | input | parameters | FLOPs per image |", "| --- | --- | --- | ---: | ---: |"]
    for row in rows:
        lines.append(
            f"| `{row['recipe']}` | `{row['model']}` | {row['shape']} | {row['params']:,} | {_flops(row['FLOPs'])} |"
        )
    return "\n".join(lines)


def main(args: list[str] | None = None) -> None:
    parser = ToolParser(prog="lightning-cnn models", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipes", action="store_true", help="one row per packaged recipe (configs/), with its options"
    )
    if parser.parse_args(args).recipes:
        print(recipe_table(recipe_rows()))
    else:
        print(markdown_table(model_rows()))


if __name__ == "__main__":
    main()
