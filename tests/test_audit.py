"""lightning-cnn audit: planted duplicates across train and test, an unreadable file, the class balance, planted
label flips ranked near the top of audit.csv, fit --exclude --top, and one-line refusals."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_cnn.cli import cli_main
from lightning_cnn.data.duplicates import find_duplicates
from tests.helpers.runs import QUICK
from tests.helpers.writers import synthetic_images, write_idx, write_sha256sums

TRAIN, TEST = 600, 150
FLIPS = 12  # 2 % of the training images get another class's label


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A small MNIST with test image 0 an exact copy of training image 5, test image 1 training image 7 plus a
    little noise, and FLIPS training labels moved to another class."""
    root = tmp_path_factory.mktemp("planted")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    train, train_labels = synthetic_images(TRAIN, (28, 28, 1), seed=3)
    test, test_labels = synthetic_images(TEST, (28, 28, 1), seed=4)
    rng = np.random.default_rng(0)
    test[0], test_labels[0] = train[5], train_labels[5]
    noise = rng.integers(-3, 4, size=train[7].shape)
    test[1], test_labels[1] = np.clip(train[7].astype(int) + noise, 0, 255).astype(np.uint8), train_labels[7]
    flipped = np.sort(rng.choice(np.arange(10, TRAIN), size=FLIPS, replace=False))
    train_labels = train_labels.copy()
    train_labels[flipped] = (train_labels[flipped] + 1 + rng.integers(0, 9, size=FLIPS)) % 10
    for prefix, images, labels in (("train", train, train_labels), ("t10k", test, test_labels)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images[..., 0])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
    write_sha256sums(root)
    return root, {"flipped": flipped.tolist(), "train_labels": train_labels}


def audit_folder(root: Path) -> Path:
    return next((root / "lightning_logs").glob("audit_*"))


def test_duplicates_pairs_and_hashes():
    images = torch.from_numpy(synthetic_images(40, (28, 28, 1), seed=1)[0]).permute(0, 3, 1, 2).contiguous()
    noisy = images[3].int() + torch.randint(-3, 4, images[3].shape, generator=torch.Generator().manual_seed(0))
    both = torch.cat([images, images[2:3], noisy.clamp(0, 255).to(torch.uint8)[None]])
    pairs = find_duplicates(both)
    found = {(int(a), int(b)): float(d) for a, b, d in zip(pairs.first, pairs.second, pairs.difference, strict=True)}
    assert set(found) == {(2, 40), (3, 41)}
    assert found[(2, 40)] == 0 and 0 < found[(3, 41)] <= 0.05


def test_audit_finds_the_planted_leaks_and_counts_the_classes(planted, run_cli, tmp_path):
    root, truth = planted
    code, err = run_cli("audit", "--labels", "false", "--data.data_dir", root, "--data.download", "false",
                        "--trainer.default_root_dir", tmp_path, *QUICK)  # fmt: skip
    assert code == 0, err
    folder = audit_folder(tmp_path)
    record = json.loads((folder / "audit.json").read_text())
    with (folder / "duplicates.csv").open() as f:
        rows = list(csv.DictReader(f))
    leaks = {(r["kind"], r["split_a"], int(r["index_a"]), r["split_b"], int(r["index_b"])) for r in rows}
    assert leaks == {("exact", "train", 5, "test", 0), ("near", "train", 7, "test", 1)}
    assert record["duplicates"]["train_test"] == 2 and record["duplicates"]["exact"] == 1
    expected = np.bincount(truth["train_labels"], minlength=10).tolist()
    assert list(record["class_balance"]["train"].values()) == expected
    assert sum(record["class_balance"]["test"].values()) == TEST
    assert record["unreadable"] == [] and not (folder / "audit.csv").exists()
    assert (folder / "duplicates.png").is_file()


def test_audit_lists_an_unreadable_file(image_folder_dir, run_cli, tmp_path):
    folders = tmp_path / "images"
    shutil.copytree(image_folder_dir / "folders", folders)
    bad = next((folders / "train").iterdir()) / "broken.png"
    bad.write_bytes(b"not an image")
    code, err = run_cli("audit", "--labels", "false", "--data", "ImageFolderDataModule", "--data.root", folders,
                        "--data.train_dir", "train", "--data.test_dir", "test", "--data.image_size", "16",
                        "--trainer.default_root_dir", tmp_path / "runs", *QUICK)  # fmt: skip
    assert code == 0, err
    record = json.loads((audit_folder(tmp_path / "runs") / "audit.json").read_text())
    assert [Path(u["file"]).name for u in record["unreadable"]] == ["broken.png"]
    assert record["dataset"]["training_images"] == 201
    assert sum(record["class_balance"]["train"].values()) == 200


def test_label_check_ranks_the_planted_flips_first_and_fit_excludes_them(planted, run_cli, tmp_path):
    root, truth = planted
    data = ["--data.data_dir", root, "--data.download", "false", "--trainer.default_root_dir", tmp_path]
    code, err = run_cli("audit", "--folds", "3", "--trainer.max_epochs", "2", "--data.batch_size", "32",
                        *data, *QUICK)  # fmt: skip
    assert code == 0, err
    folder = audit_folder(tmp_path)
    with (folder / "audit.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["index", "file", "given", "suggested", "score"] and len(rows) == TRAIN
    assert [float(r["score"]) for r in rows] == sorted(float(r["score"]) for r in rows)
    top = {int(r["index"]) for r in rows[: 2 * FLIPS]}  # top 4 %
    recall = len(top & set(truth["flipped"])) / FLIPS
    assert recall >= 0.75, recall
    assert (folder / "suspects.png").is_file()

    # fit --exclude audit.csv --top 5 drops exactly those five from the training split
    dropped = [int(r["index"]) for r in rows[:5]]
    labels = torch.as_tensor(truth["train_labels"], dtype=torch.long)
    plain = cli_main([*map(str, data), *QUICK], run=False).datamodule.training_splits(labels)["train"]
    cli = cli_main([*map(str, data), *QUICK, "--exclude", str(folder / "audit.csv"), "--top", "5"], run=False)
    train = cli.datamodule.training_splits(labels)["train"]
    assert set(plain.tolist()) - set(train.tolist()) == set(dropped) & set(plain.tolist())
    assert len(train) == len(plain) - len(set(dropped) & set(plain.tolist()))
    code, err = run_cli("fit", "--exclude", folder / "audit.csv", "--top", "5", "--trainer.fast_dev_run", "true",
                        *data, *QUICK)  # fmt: skip
    assert code == 0, err

    # an audit of another dataset is refused in one line
    other = tmp_path / "other.csv"
    other.write_text((folder / "audit.csv").read_text())
    record = json.loads((folder / "audit.json").read_text())
    record["dataset"]["labels_sha256"] = "0" * 64
    (tmp_path / "audit.json").write_text(json.dumps(record))
    code, err = run_cli("fit", "--exclude", other, "--top", "5", "--trainer.fast_dev_run", "true", *data, *QUICK)
    assert code == 2 and err.strip().startswith("error:") and "other training labels" in err
    assert len([line for line in err.splitlines() if line.startswith(("error", "Traceback"))]) == 1


def bad_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["audit", "--folds", "1"], "--folds must be from 2"),
        (["audit", "--hamming", "64"], "--hamming must be from 0 to 63"),
        (["audit", "--top", "3"], "leave --top out"),
        (["fit", "--top", "3"], "--top needs --exclude"),
        (["fit", "--exclude", "CSV_OK", "--top", "-1"], "--exclude needs --top N"),
        (["fit", "--exclude", "CSV_OK"], "--exclude needs --top N"),
        (["fit", "--exclude", "CSV_NO_GIVEN", "--top", "1"], "has no column given"),
        (["fit", "--exclude", "CSV_OK", "--top", "9"], "has 2 rows"),
        (["fit", "--exclude", "CSV_BAD_INDEX", "--top", "1"], "is not a training image number"),
        (["fit", "--exclude", "CSV_FAR", "--top", "1"], "names image 99999"),
        (["fit", "--exclude", "CSV_WRONG_LABEL", "--top", "1"], "this dataset labels it"),
    ],
)
def test_bad_input_is_one_line(planted, run_cli, tmp_path, args, says):
    root, truth = planted
    label = str(truth["train_labels"][0])
    other = str((int(label) + 1) % 10)
    files = {
        "CSV_OK": f"index,file,given,suggested,score\n0,,{label},{label},0.1\n1,,{label},{label},0.2\n",
        "CSV_NO_GIVEN": "index,file,score\n0,,0.1\n",
        "CSV_BAD_INDEX": f"index,file,given,suggested,score\n-4,,{label},{label},0.1\n",
        "CSV_FAR": f"index,file,given,suggested,score\n99999,,{label},{label},0.1\n",
        "CSV_WRONG_LABEL": f"index,file,given,suggested,score\n0,,{other},{label},0.1\n",
    }
    args = [str(bad_csv(tmp_path / f"{a}.csv", files[a])) if a in files else a for a in args]
    extra = ["--trainer.fast_dev_run", "true"] if args[0] == "fit" else []
    code, err = run_cli(*args, "--data.data_dir", root, "--data.download", "false", *extra,
                        "--trainer.default_root_dir", tmp_path / "runs", *QUICK)  # fmt: skip
    assert code == 2, err
    assert len([line for line in err.splitlines() if line.startswith(("error", "Traceback"))]) == 1, err
    assert says in err
