"""Boosting: ``python -m lightning_cnn boost --members K --config CONFIG [fit options]``.

SAMME, multi-class AdaBoost (``lightning_cnn.inference.boosting``): members train one after the other, each on the
training split reweighted by its predecessors' mistakes. The weights enter by weighted resampling, not a weighted
loss: member m > 1 trains on ``data.sample_weights`` (``lightning_cnn.data.weighted``), as many training images as
the split, drawn with replacement with probability proportional to its weights, which keeps every loss, augmentation
and mixup path of the model as it is and reuses bagging's resampling; member 1 (uniform weights) trains on the
split itself. After each member its predictions on the whole training split (no augmentation) give its weighted
error, its vote weight α and the next member's weights. Boosting stops early, with a line saying why, when a member
is no better than chance (error >= 1 - 1/classes: α 0, no vote) or makes no training mistake.

Every member is an ordinary run in ``lightning_logs/version_N`` with its ``boosting.json`` (α, error, weights);
``boost.json`` and ``boost.csv`` in ``lightning_logs/boost_<date-time>/`` beside them record every member (rewritten
after each) with the weight files, and ``ensemble`` on the members adds the α-weighted vote (a ``boosting`` row).
``--resume lightning_logs/boost_<date-time>`` finishes an interrupted boost from its last finished member.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from lightning_cnn.checkpoints import class_of
from lightning_cnn.config_files import option_given
from lightning_cnn.data import ImageDataModule
from lightning_cnn.data.weighted import load_sample_weights, save_sample_weights
from lightning_cnn.errors import ConfigError
from lightning_cnn.experiments import runner
from lightning_cnn.inference.boosting import samme_step, weights_summary, write_record
from lightning_cnn.inference.trained import TrainedModel, load_trained
from lightning_cnn.internals import CLASS_PATH_KEY, INSTANTIATOR_KEY, saved_class_path
from lightning_cnn.tools.options import ToolParser, add_device_option, add_resume_option, resolve_device
from lightning_cnn.tools.tables import format_table, write_csv

# data module settings that change the training batches only: the training split's predictions leave them out
TRAINING_ONLY = ("augment", "mix", "bootstrap_seed", "sample_weights", INSTANTIATOR_KEY, CLASS_PATH_KEY)
# members are trained one after the other: a thousand is far beyond any useful boost, and bounds the records
MAX_MEMBERS = 1000


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = ToolParser(
        prog="lightning-cnn boost",
        description="Boosting (SAMME): train K members one after the other, each on a resample of the training split"
        " weighted by its predecessors' mistakes, then evaluate them with 'lightning-cnn ensemble' (the α-weighted"
        " vote). Every other option is a fit option (see 'lightning-cnn fit --help').",
    )
    parser.add_argument("--members", type=int, default=None, help="number of members K, 2 or more (default: 5)")
    parser.add_argument("--first_seed", type=int, default=0, help="member m uses seed FIRST_SEED + m - 1 (default: 0)")
    add_device_option(parser)
    add_resume_option(parser, "boost", "boost", "members")
    args, fit_args = parser.parse_known_args(list(argv))
    if args.members is not None and not 2 <= args.members <= MAX_MEMBERS:
        parser.error(f"--members must be 2 to {MAX_MEMBERS}, got {args.members}")
    for key in ("data.bootstrap_seed", "data.sample_weights"):
        if option_given(fit_args, key):
            raise ConfigError(f"boost sets --{key} for every member itself; leave it out")
    return args, fit_args


def member_args(fit_args: list[str], seed: int, weights_file: Path | None) -> list[str]:
    """The fit options of a member: its weighted resample (none for the first), its training seed unless given."""
    args = list(fit_args)
    if weights_file is not None:
        args += ["--data.sample_weights", str(weights_file.resolve())]
    if not option_given(fit_args, "seed_everything"):
        args += ["--seed_everything", str(seed)]
    return args


def training_split(member: TrainedModel) -> tuple[Tensor, Tensor]:
    """The uint8 images and labels of the training split a member's data module draws its resamples from, in the
    order of the weights."""
    hparams = member.datamodule_hparams
    cls = class_of(saved_class_path(hparams), ImageDataModule, "data module", member.checkpoint_path)
    datamodule = cls(**{k: v for k, v in hparams.items() if k not in TRAINING_ONLY})
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert datamodule.train_set is not None
    return datamodule.train_set.images, datamodule.train_set.labels


def save(folder: Path, record: dict[str, Any]) -> str:
    """Write boost.json and boost.csv; return the printed table."""
    (folder / "boost.json").write_text(json.dumps(record, indent=2) + "\n")
    runs = record["runs"]
    names = sorted(set.intersection(*(set(run["metrics"]) for run in runs)))
    header = ["member", "alpha", "train_err", "effective_size", *names, "run_dir"]
    rows = [[run["member"], round(run["alpha"], 4), round(run["err"], 4), round(run["weights"]["effective_size"]),
             *(run["metrics"][n] for n in names), run["run_dir"]] for run in runs]  # fmt: skip
    write_csv(folder / "boost.csv", header, rows)
    return format_table([*header[:-1], "run"], rows)


def load_previous(folder: Path, members: int | None, fit_args: list[str]) -> dict[str, Any]:
    """The record of an interrupted boost in ``folder``, checked against the options given now."""
    record = runner.load_record(folder, "boost", fit_args)
    try:
        record["members"], record["first_seed"] = int(record["members"]), int(record["first_seed"])
        record["stopped"] = record.get("stopped")
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"--resume: {folder / 'boost.json'} is not a boost record ({err})") from None
    if members is not None and members != record["members"]:
        raise ConfigError(f"--resume: {folder} boosts {record['members']} members, not {members}; leave --members out")
    return record


def main(argv: Sequence[str]) -> None:
    """Train the members one after the other, each weighted by the mistakes before it; print and save the table."""
    args, fit_args = parse_args(argv)
    device = resolve_device(args.device)
    members = args.members or 5
    record: dict[str, Any] = {"members": members, "first_seed": args.first_seed, "stopped": None}
    if args.resume is not None:
        record = load_previous(args.resume, args.members, fit_args)
        members, fit_args = record["members"], record["fit_args"]
    experiment = runner.Experiment("boost", "member", range(1, members + 1), args.resume)
    if args.resume is not None:
        experiment.resume(experiment.keys, record["runs"], record["wall_time_s"])
    first = record["first_seed"]
    runs_root = runner.runs_folder(member_args(fit_args, first, None))  # every option checked before the first member
    missing = [] if record["stopped"] else experiment.missing()
    if args.resume is not None and missing:
        expected = (args.resume / f"weights_{missing[0]}.pt").resolve()
        runner.remove_abandoned_runs(runs_root, "boost", lambda config: abandoned(config, expected, missing[0]))
    split: tuple[Tensor, Tensor] | None = None
    for m in missing:
        weights_file = experiment.folder / f"weights_{m}.pt" if m > 1 and experiment.folder else None
        experiment.progress(f"member {m} of {members}")
        result = runner.run_fit(member_args(fit_args, first + m - 1, weights_file))
        folder = experiment.add(m, result, result.metrics, runs_root)
        trained = load_trained(result.log_dir, device)
        split = split or training_split(trained)
        images, labels = split
        weights = load_sample_weights(weights_file, len(labels))[0] if weights_file else None
        wrong = trained.probabilities(images, 512).argmax(1) != labels
        step = samme_step(weights, wrong, len(trained.preprocessing.classes))
        summary = weights_summary(weights, len(labels))
        mine = {"boost_dir": str(folder), "member": m, "alpha": step.alpha, "err": step.err, "weights": summary,
                "weights_file": str(weights_file) if weights_file else None, "stopped": step.stop}  # fmt: skip
        write_record(result.log_dir, mine)
        run = next(run for run in experiment.runs if run["member"] == m)
        run.update({k: mine[k] for k in ("alpha", "err", "weights", "weights_file")})
        if step.stop is None and m < members:
            save_sample_weights(folder / f"weights_{m + 1}.pt", step.weights, first + m)
        record.update(stopped=step.stop and f"member {m}: {step.stop}", fit_args=fit_args, runs=experiment.runs,
                      wall_time_s=round(experiment.seconds(), 1))  # fmt: skip
        save(folder, record)
        print(f"boost: member {m}: weighted training error {step.err:.4f}, alpha {step.alpha:.4f}", file=sys.stderr)
        if step.stop:
            print(f"boost: stopped after member {m} of {members}: {step.stop}", file=sys.stderr)
            break
    folder = experiment.folder
    assert folder is not None  # claimed by the first member, or the one resumed
    table = save(folder, record)
    print(f"\nboosting (SAMME): {len(experiment.runs)} of {members} members ({experiment.seconds():.0f} s):")
    print(table)
    if record["stopped"]:
        print(f"stopped early, {record['stopped']}")
    print(f"saved {folder / 'boost.json'} and {folder / 'boost.csv'}; evaluate the α-weighted vote with:")
    runs = " ".join(shlex.quote(run["run_dir"]) for run in experiment.runs)
    print(f"  lightning-cnn ensemble --ckpt_path {runs} --output {shlex.quote(str(folder / 'ensemble.json'))}")


def abandoned(config: dict[str, Any], weights_file: Path, next_member: int) -> str | None:
    """``member N`` when a saved ``config.yaml`` is that of the member a killed boost was training: a resumed boost
    has its folder, so that member is the second or later and trains on its own ``weights_file``."""
    data = config.get("data")
    init_args = data.get("init_args") if isinstance(data, dict) else None
    weights = init_args.get("sample_weights") if isinstance(init_args, dict) else None
    return f"member {next_member}" if weights and str(weights) == str(weights_file) else None
