"""``python -m lightning_cnn ensemble``: several trained runs on the test split of the data module they were
trained on: each alone, their softmax outputs averaged (bagging, when they were trained on bootstrap resamples), and
stacked (a logistic regression fit on their outputs for the validation split); members trained by ``boost`` also
vote, each with its α (``lightning_cnn.inference.boosting``).

Each member sees the images through its own recorded preprocessing; the members must agree on the classes and the
input shape. A member calibrated by ``lightning-cnn calibrate`` contributes the softmax of its logits divided by its
temperature (``--calibrated false``: the raw softmax). The table (accuracy and ECE of each row) goes to stdout, the
figures to ``ensemble.json``. With ``--tta true`` every figure comes again with test-time augmentation, each member's
softmax averaged over the views its training augmentation implies (``lightning_cnn.data.tta``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from lightning_cnn.checkpoints import class_of
from lightning_cnn.config_files import find_config
from lightning_cnn.data import ImageDataModule
from lightning_cnn.errors import ConfigError, check_file
from lightning_cnn.inference.boosting import read_record, samme_vote, soft_vote
from lightning_cnn.inference.calibration import applied_temperature, probability_ece
from lightning_cnn.inference.stacking import fit_stacker
from lightning_cnn.inference.trained import TrainedModel, load_trained
from lightning_cnn.internals import CLASS_PATH_KEY, INSTANTIATOR_KEY, saved_class_path
from lightning_cnn.tools.options import (
    ToolParser,
    add_calibrated_option,
    add_device_option,
    add_trust_option,
    add_tta_option,
    resolve_device,
)
from lightning_cnn.tools.tables import format_table

# data module settings that only matter for training (a bootstrap resample changes the training images alone), and
# the keys Lightning's CLI adds to them, which are not settings
TRAINING_ONLY = ("augment", "bootstrap_seed", "sample_weights", INSTANTIATOR_KEY, CLASS_PATH_KEY)
# data module settings that choose the validation split: stacking needs one that no member trained on
SPLIT_KEYS = ("val_size", "test_size", "split_seed", "fold", "num_folds")


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    """The options, and the ``--data.KEY VALUE`` overrides (values read as YAML: ``64``, ``true``, ``[1, 2]``)."""
    parser = ToolParser(
        prog="lightning-cnn ensemble",
        description="Test several trained runs, the average of their softmax outputs (bagging for members trained on"
        " bootstrap resamples) and their stacking (a logistic regression fit on their validation outputs) on the test"
        " split of the data module they were trained on (from the first checkpoint, changed by --config and"
        " --data.KEY VALUE).",
        epilog="example: lightning-cnn ensemble --ckpt_path lightning_logs/version_{0,1,2} --data.data_dir data",
    )
    parser.add_argument(
        "--ckpt_path", nargs="+", required=True, help="checkpoint files or run folders (lightning_logs/version_N)"
    )
    parser.add_argument("--config", help="a config (e.g. a run's config.yaml) whose data section picks the test data")
    parser.add_argument("--output", default="ensemble.json", help="where the figures go (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=512, help="images per forward pass (default: 512)")
    add_device_option(parser)
    add_trust_option(parser)
    add_calibrated_option(parser)
    add_tta_option(parser)
    args, rest = parser.parse_known_args(list(argv))
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(rest):
        key, _, value = rest[i].partition("=")
        if not key.startswith("--data.") or len(key) == len("--data."):
            parser.error(f"unrecognized argument {rest[i]}; data options are given as --data.KEY VALUE")
        if not value:
            if i + 1 >= len(rest):
                parser.error(f"{key} needs a value")
            value, i = rest[i + 1], i + 1
        overrides[key.removeprefix("--data.")] = yaml.safe_load(value)
        i += 1
    if args.batch_size < 1:
        parser.error(f"--batch_size must be at least 1, got {args.batch_size}")
    return args, overrides


def data_settings(first: TrainedModel, config: str | None, overrides: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The data module's class path and arguments: the first member's, then the config's data section, then
    ``--data.*``; options that only matter for training (augmentations) are dropped."""
    class_path = saved_class_path(first.datamodule_hparams)
    init_args = {k: v for k, v in first.datamodule_hparams.items() if k not in TRAINING_ONLY}
    if config:
        path = Path(config)
        check_file(path, "config file")
        data = (yaml.safe_load(path.read_text()) or {}).get("data")
        if isinstance(data, dict):
            if data.get("class_path") and data["class_path"] != class_path:
                class_path, init_args = data["class_path"], {}
            init_args.update(data.get("init_args") or {})
    init_args.update(overrides)
    for key in TRAINING_ONLY:
        init_args.pop(key, None)
    if not class_path:
        raise ConfigError(f"{first.checkpoint_path} does not record its data module; give --config with a data section")
    return class_path, init_args


Split = tuple[Tensor, Tensor]


def load_splits(class_path: str, init_args: dict[str, Any], path: Path) -> tuple[Split, Split]:
    """The uint8 images and labels of the validation and test splits of the data module ``class_path(**init_args)``."""
    cls = class_of(class_path, ImageDataModule, "data module", path)
    try:
        datamodule = cls(**init_args)
    except TypeError as err:
        raise ConfigError(f"data: {class_path.rsplit('.', 1)[-1]} does not take these options ({err})") from err
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    assert datamodule.val_set is not None and datamodule.test_set is not None
    val, test = datamodule.val_set, datamodule.test_set
    return (val.images, val.labels), (test.images, test.labels)


def check_members(members: Sequence[TrainedModel]) -> None:
    """Members must be distinct checkpoints that classify the same images into the same classes for their outputs
    to be averaged."""
    seen: dict[Path, Path] = {}
    for member in members:
        path = Path(member.checkpoint_path)
        if path.resolve() in seen:
            raise ConfigError(
                f"ensemble: {path} is given twice (as {seen[path.resolve()]} before); give each member once, as a"
                " run folder or a checkpoint file"
            )
        seen[path.resolve()] = path
    first = members[0]
    for member in members[1:]:
        for what in ("classes", "input_shape"):
            mine, theirs = getattr(first.preprocessing, what), getattr(member.preprocessing, what)
            if mine != theirs:
                raise ConfigError(
                    f"ensemble members differ in {what}: {first.checkpoint_path} has {list(mine)},"
                    f" {member.checkpoint_path} has {list(theirs)}; ensemble runs trained on the same data"
                )


def accuracy(probabilities: Tensor, labels: Tensor) -> float:
    return (probabilities.argmax(1) == labels).float().mean().item()


def stacking_problem(members: Sequence[TrainedModel], val_labels: Tensor) -> str | None:
    """Why stacking cannot be fit on the validation split, or None when it can."""
    if len(val_labels) == 0:
        return "the validation split is empty (data.val_size: 0)"
    splits = {tuple(m.datamodule_hparams.get(k) for k in SPLIT_KEYS) for m in members}
    if len(splits) > 1:
        return f"the members were validated on different splits ({', '.join(SPLIT_KEYS)} differ)"
    return None


def evaluate(
    members: Sequence[TrainedModel],
    val: Split,
    test: Split,
    batch_size: int,
    temperatures: Sequence[float | None] | None = None,
) -> dict[str, Any]:
    """Each member's test accuracy and ECE, their mean, those of the averaged softmax outputs (of all members, and of
    the bootstrap-trained ones: bagging), and of stacking, fit on the validation split. A member's temperature (None:
    not calibrated) divides its logits first."""
    images, labels = test
    temps = list(temperatures) if temperatures is not None else [None] * len(members)
    test_probs = [member.probabilities(images, batch_size, t or 1.0) for member, t in zip(members, temps, strict=True)]
    rows = [
        {
            "ckpt_path": str(member.checkpoint_path),
            "model": type(member.model).__name__,
            "bootstrap_seed": member.datamodule_hparams.get("bootstrap_seed"),
            "boosting": read_record(Path(member.checkpoint_path)),
            "temperature": t,
            "test_acc": accuracy(probs, labels),
            "test_ece": probability_ece(probs, labels),
        }
        for member, probs, t in zip(members, test_probs, temps, strict=True)
    ]
    averaged = torch.stack(test_probs).mean(0)
    result: dict[str, Any] = {
        "members": rows,
        "member_mean_test_acc": sum(row["test_acc"] for row in rows) / len(rows),
        "member_mean_test_ece": sum(row["test_ece"] for row in rows) / len(rows),
        "ensemble_test_acc": accuracy(averaged, labels),
        "ensemble_test_ece": probability_ece(averaged, labels),
        "num_images": len(labels),
    }
    bagged = [probs for row, probs in zip(rows, test_probs, strict=True) if row["bootstrap_seed"] is not None]
    bagged_mean = torch.stack(bagged).mean(0) if len(bagged) >= 2 else None
    result["bagging"] = (
        {
            "members": len(bagged),
            "test_acc": accuracy(bagged_mean, labels),
            "test_ece": probability_ece(bagged_mean, labels),
        }
        if bagged_mean is not None
        else None
    )
    result["boosting"] = boosting(rows, test_probs, labels)
    problem = stacking_problem(members, val[1])
    if problem is None:
        val_probs = [
            member.probabilities(val[0], batch_size, t or 1.0) for member, t in zip(members, temps, strict=True)
        ]
        stacker = fit_stacker(val_probs, val[1])
        stacked = stacker.probabilities(test_probs)
        result["stacking"] = {
            "test_acc": accuracy(stacked, labels),
            "test_ece": probability_ece(stacked, labels),
            "val_images": len(val[1]),
        }
    else:
        result["stacking"] = {"skipped": problem}
    return result


def boosting(rows: list[dict[str, Any]], test_probs: list[Tensor], labels: Tensor) -> dict[str, Any] | None:
    """SAMME's α-weighted vote of the boosted members (those with a ``boosting.json``) and its soft variant (the
    α-weighted softmax average), or None when no member was boosted."""
    boosted = [(row["boosting"], probs) for row, probs in zip(rows, test_probs, strict=True) if row["boosting"]]
    if not boosted:
        return None
    if len({record.get("boost_dir") for record, _ in boosted}) > 1:
        return {"skipped": "the boosted members come from different boost runs, whose α do not add up"}
    alphas = [float(record["alpha"]) for record, _ in boosted]
    if sum(alphas) <= 0:
        return {"skipped": "every boosted member has α 0 (no better than chance)"}
    votes = samme_vote([probs.argmax(1) for _, probs in boosted], alphas, test_probs[0].shape[1])
    soft = soft_vote([probs for _, probs in boosted], alphas)
    return {
        "members": len(boosted),
        "alphas": alphas,
        "test_acc": accuracy(votes, labels),
        "test_ece": probability_ece(votes, labels),
        "soft": {"test_acc": accuracy(soft, labels), "test_ece": probability_ece(soft, labels)},
    }


def table(result: dict[str, Any]) -> str:
    """The figures as an aligned text table: members (calibrated or not), their mean, averaging (bagging), stacking;
    accuracy and ECE of each."""
    n = len(result["members"])
    lines = []
    for row in result["members"]:
        data = "training split" if row["bootstrap_seed"] is None else f"bootstrap {row['bootstrap_seed']}"
        if row.get("boosting"):
            data = f"boosted {row['boosting']['member']}, α={row['boosting']['alpha']:.3f}"
        calibrated = "no" if row["temperature"] is None else f"T={row['temperature']:.3f}"
        lines.append((row["ckpt_path"], row["model"], data, calibrated, *_figures(row)))
    mean = {"test_acc": result["member_mean_test_acc"], "test_ece": result["member_mean_test_ece"]}
    lines.append(("mean of members", "", "", "", *_figures(mean)))
    average = {"test_acc": result["ensemble_test_acc"], "test_ece": result["ensemble_test_ece"]}
    bagging = result["bagging"]
    if bagging and bagging["members"] == n:
        lines.append((f"bagging (softmax average of {n})", "", "", "", *_figures(average)))
    else:
        lines.append((f"softmax average of {n}", "", "", "", *_figures(average)))
        if bagging:
            m = bagging["members"]
            lines.append((f"bagging (softmax average of the {m} bootstrap)", "", "", "", *_figures(bagging)))
    boosted = result.get("boosting")
    if boosted and "test_acc" in boosted:
        lines.append((f"boosting (α-weighted vote of {boosted['members']})", "", "", "", *_figures(boosted)))
        lines.append((f"boosting, soft (α-weighted softmax of {boosted['members']})", "", "", "",
                      *_figures(boosted["soft"])))  # fmt: skip
    elif boosted:
        lines.append(("boosting", "", "", "", f"skipped: {boosted['skipped']}", ""))
    stacking = result["stacking"]
    if "test_acc" in stacking:
        label = f"stacking (fit on {stacking['val_images']} validation images)"
        lines.append((label, "", "", "", *_figures(stacking)))
    else:
        lines.append(("stacking", "", "", "", f"skipped: {stacking['skipped']}", ""))
    header = ["member", "model", "trained on", "calibrated", "test/acc", "test/ece"]
    return format_table(header, lines, right={"test/acc", "test/ece"})


def _figures(figures: dict[str, Any]) -> tuple[str, str]:
    return f"{figures['test_acc']:.4f}", f"{figures['test_ece']:.4f}"


def member_temperature(member: TrainedModel, calibrated: bool) -> float | None:
    """The temperature of a calibrated member (None: not calibrated), noting on stderr why a stored one is unused."""
    temperature, note = applied_temperature(member.checkpoint_path, calibrated)
    if temperature is None and note:
        sys.stderr.write(note + "\n")
    return temperature


def tta_table(result: dict[str, Any]) -> str:
    """The table of the figures with test-time augmentation, under a line naming the views."""
    distinct = {tuple(names) for names in result["views"].values()}
    if len(distinct) == 1:
        names = distinct.pop()
        said = f"{len(names)} views per image ({', '.join(names)})"
    else:
        said = "each member's own views (" + "; ".join(f"{len(n)} for {p}" for p, n in result["views"].items()) + ")"
    return f"\nwith test-time augmentation: the softmax averaged over {said}\n{table(result)}"


def main(argv: Sequence[str]) -> None:
    args, overrides = parse_args(argv)
    device = resolve_device(args.device)
    members = [load_trained(path, device, trust=args.trust_checkpoint) for path in args.ckpt_path]
    check_members(members)
    tta_members = [member.with_tta() for member in members] if args.tta else None  # refused before any work
    class_path, init_args = data_settings(members[0], args.config and find_config(args.config), overrides)
    val, test = load_splits(class_path, init_args, members[0].checkpoint_path)
    if tuple(test[0].shape[1:]) != members[0].preprocessing.input_shape:
        raise ConfigError(
            f"the test images of {class_path} are {tuple(test[0].shape[1:])}, the members take"
            f" {members[0].preprocessing.input_shape}; give the data settings the runs were trained with"
        )
    if getattr(members[0].model, "multi_label", False):  # label sets: sigmoid probabilities averaged instead
        write_result(multilabel_evaluation(members, val, test, args.batch_size), args.output)
        return
    temperatures = [member_temperature(member, args.calibrated) for member in members]
    result = evaluate(members, val, test, args.batch_size, temperatures)
    result["calibrated"] = args.calibrated
    result["data"] = {"class_path": class_path, "init_args": init_args}
    if tta_members is not None:  # every figure again, each member's probabilities averaged over its views
        result["tta"] = evaluate(tta_members, val, test, args.batch_size, temperatures)
        result["tta"]["views"] = {str(m.checkpoint_path): [view.name for view in m.views] for m in tta_members}
    print(table(result))
    if "tta" in result:
        print(tta_table(result["tta"]))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    sys.stderr.write(f"wrote {output}\n")


def multilabel_evaluation(members: Sequence[TrainedModel], val: Split, test: Split, batch_size: int) -> dict[str, Any]:
    """Multi-label members: each one's test figures at its own thresholds, and those of their averaged sigmoid
    probabilities at thresholds tuned (best F1 per label) on the averaged probabilities of the validation split."""
    from lightning_cnn.models.multilabel import f1_thresholds, multilabel_figures

    if not all(getattr(member.model, "multi_label", False) for member in members):
        raise ConfigError("ensemble: some members are multi-label runs and some are not; ensemble runs of one kind")
    images, targets = test
    test_probs = [member.probabilities(images, batch_size) for member in members]
    rows = [
        {
            "ckpt_path": str(member.checkpoint_path),
            "model": type(member.model).__name__,
            **{f"test_{k}": v for k, v in multilabel_figures(probs, targets, member.model.label_thresholds).items()},
        }
        for member, probs in zip(members, test_probs, strict=True)
    ]
    averaged = torch.stack(test_probs).mean(0)
    if len(val[1]):
        val_averaged = torch.stack([member.probabilities(val[0], batch_size) for member in members]).mean(0)
        thresholds = f1_thresholds(val_averaged, val[1])
    else:
        thresholds = torch.full((averaged.shape[1],), 0.5)
    figures = multilabel_figures(averaged, targets, thresholds)
    return {
        "multi_label": True,
        "members": rows,
        "ensemble": {f"test_{k}": v for k, v in figures.items()},
        "thresholds": [round(float(t), 6) for t in thresholds],
        "num_images": len(targets),
    }


def write_result(result: dict[str, Any], output_name: str) -> None:
    """Print a multi-label result as a table and write it as JSON."""
    keys = ("test_map", "test_f1", "test_f1_micro", "test_hamming_acc", "test_acc")
    lines = [f"{'':<44}  {'mAP':>7}  {'F1 mac':>7}  {'F1 mic':>7}  {'Hamming':>7}  {'exact':>7}"]
    for row in [
        *result["members"],
        {"ckpt_path": f"sigmoid average of {len(result['members'])}", **result["ensemble"]},
    ]:
        lines.append(f"{str(row['ckpt_path'])[-44:]:<44}  " + "  ".join(f"{row[k]:7.4f}" for k in keys))
    print("\n".join(lines))
    output = Path(output_name)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    sys.stderr.write(f"wrote {output}\n")
