"""CIFAR-100 (the official binary archive, fine or coarse labels) and SVHN (the official MATLAB files, with or without
the extra images): read, split, checked against their sums, downloaded, and trained end to end on tiny copies in the
official formats."""

from __future__ import annotations

import hashlib
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from torchvision.datasets import SVHN

from lightning_cnn.data import DATAMODULES, CIFAR100DataModule, SVHNDataModule
from lightning_cnn.data import cifar100 as cifar100_module
from lightning_cnn.data import svhn as svhn_module
from lightning_cnn.errors import ConfigError, CorruptDataError, DataNotFoundError, MissingExtraError
from lightning_cnn.tools.models import recipe_rows
from tests.helpers.runs import QUICK
from tests.helpers.writers import synthetic_images, write_sha256sums

ARCHIVE = "cifar-100-binary.tar.gz"


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def fixture_labels(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The coarse and fine labels conftest's ``cifar100_split`` wrote."""
    from tests.conftest import cifar100_split

    _, coarse, fine = cifar100_split(n, seed)
    return torch.from_numpy(coarse), torch.from_numpy(fine)


# --- CIFAR-100 ---------------------------------------------------------------------------------------------------


def test_cifar100_reads_the_archive_in_place_with_fine_labels(cifar100_dir):
    dm = CIFAR100DataModule(data_dir=str(cifar100_dir), val_size=50)
    dm.prepare_data()
    dm.setup(None)
    assert dm.train_set.images.shape == (250, 3, 32, 32) and dm.train_set.images.dtype == torch.uint8
    assert len(dm.val_set) == 50 and len(dm.test_set) == 100
    assert dm.num_classes == len(dm.classes) == 100 and dm.classes[0] == "apple" and dm.classes[-1] == "worm"
    _, fine = fixture_labels(100, 31)
    assert torch.equal(dm.test_set.labels, fine)
    assert dm.preprocessing()["classes"] == list(dm.classes) and dm.preprocessing()["mean"][0] == pytest.approx(0.5071)
    assert not (cifar100_dir / "cifar-100-binary").exists()  # nothing unpacked


def test_cifar100_coarse_labels_are_the_twenty_superclasses_of_the_same_images(cifar100_dir):
    fine = CIFAR100DataModule(data_dir=str(cifar100_dir), val_size=50)
    coarse = CIFAR100DataModule(data_dir=str(cifar100_dir), val_size=50, label_mode="coarse")
    fine.setup(None)
    coarse.setup(None)
    assert coarse.num_classes == len(coarse.classes) == 20 and coarse.classes[0] == "aquatic_mammals"
    assert torch.equal(coarse.test_set.labels, fixture_labels(100, 31)[0])
    assert torch.equal(coarse.val_set.images, fine.val_set.images)  # the same seeded split, other labels
    assert torch.equal(coarse.val_set.labels, fine.val_set.labels // 5)  # the fixture's superclass of each class


def test_a_label_mode_that_is_neither_is_one_line(run_cli, cifar100_dir, tmp_path):
    with pytest.raises(ConfigError, match="data.label_mode must be fine"):
        CIFAR100DataModule(label_mode="medium")
    code, err = run_cli(
        "fit", "--data", "CIFAR100DataModule", "--data.label_mode", "medium", "--data.data_dir", cifar100_dir,
        "--trainer.default_root_dir", tmp_path,
    )  # fmt: skip
    assert code == 2 and len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err
    assert "label_mode" in err and not (tmp_path / "lightning_logs").exists()


def test_cifar100_reads_the_unpacked_folder_the_same(cifar100_dir, tmp_path):
    with tarfile.open(cifar100_dir / ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    unpacked = CIFAR100DataModule(data_dir=str(tmp_path), val_size=50)
    assert unpacked.files_present()
    unpacked.setup(None)
    archived = CIFAR100DataModule(data_dir=str(cifar100_dir), val_size=50)
    archived.setup(None)
    assert torch.equal(unpacked.train_set.images, archived.train_set.images)
    assert torch.equal(unpacked.test_set.labels, archived.test_set.labels)


def test_an_archive_that_fails_the_official_md5_is_one_line_naming_it(cifar100_dir, tmp_path):
    shutil.copy(cifar100_dir / ARCHIVE, tmp_path / ARCHIVE)  # without the fixture's SHA256SUMS
    with pytest.raises(CorruptDataError, match="official checksum") as caught:
        CIFAR100DataModule(data_dir=str(tmp_path)).prepare_data()
    assert str(tmp_path / ARCHIVE) in one_line(caught)


def test_a_damaged_archive_or_bin_file_is_one_line_naming_it(cifar100_dir, tmp_path):
    (tmp_path / "cut").mkdir()
    data = (cifar100_dir / ARCHIVE).read_bytes()
    (tmp_path / "cut" / ARCHIVE).write_bytes(data[: len(data) // 2])
    write_sha256sums(tmp_path / "cut")  # sums that match the damaged file: only reading it finds the damage
    with pytest.raises(CorruptDataError, match="cannot read") as caught:
        CIFAR100DataModule(data_dir=str(tmp_path / "cut")).setup("test")
    assert str(tmp_path / "cut" / ARCHIVE) in one_line(caught)

    folder = tmp_path / "short" / "cifar-100-binary"
    folder.mkdir(parents=True)
    (folder / "train.bin").write_bytes(bytes(3074 * 3))
    (folder / "test.bin").write_bytes(bytes(3074 * 2 + 100))  # a record cut short
    with pytest.raises(CorruptDataError, match="not a whole number of 3,074-byte") as caught:
        CIFAR100DataModule(data_dir=str(tmp_path / "short")).setup("test")
    assert str(folder / "test.bin") in one_line(caught)


def test_cifar100_missing_without_download_names_the_files(tmp_path):
    with pytest.raises(DataNotFoundError, match=f"{ARCHIVE}, or cifar-100-binary/train.bin") as caught:
        CIFAR100DataModule(data_dir=str(tmp_path), download=False).prepare_data()
    assert str(tmp_path) in one_line(caught)


def test_cifar100_downloads_the_official_archive_and_checks_its_md5(cifar100_dir, tmp_path, monkeypatch):
    calls = []

    def fake_download(url: str, root: str, filename: str, md5: str) -> None:
        calls.append((url, filename, md5))
        Path(root).mkdir(parents=True, exist_ok=True)  # as torchvision's download_url does
        shutil.copy(cifar100_dir / ARCHIVE, Path(root) / filename)

    monkeypatch.setattr(cifar100_module, "download_url", fake_download)
    monkeypatch.setattr(cifar100_module, "ARCHIVE_MD5", hashlib.md5((cifar100_dir / ARCHIVE).read_bytes()).hexdigest())
    dm = CIFAR100DataModule(data_dir=str(tmp_path / "data"), val_size=50)
    dm.prepare_data()
    assert calls == [("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz", ARCHIVE, cifar100_module.ARCHIVE_MD5)]
    dm.setup("fit")
    assert len(dm.train_set) == 250


# --- SVHN --------------------------------------------------------------------------------------------------------


def test_svhn_reads_the_mat_files_and_labels_the_digit_zero_0(svhn_dir):
    dm = SVHNDataModule(data_dir=str(svhn_dir), val_size=50)
    dm.prepare_data()
    dm.setup(None)
    assert dm.train_set.images.shape == (250, 3, 32, 32) and dm.train_set.images.dtype == torch.uint8
    assert len(dm.val_set) == 50 and len(dm.test_set) == 100 and dm.classes[0] == "0"
    images, digits = synthetic_images(100, (32, 32, 3), 41)
    assert torch.equal(dm.test_set.labels, torch.from_numpy(digits))  # the 10s in the file are 0s here
    assert bool((dm.test_set.labels == 0).any())
    assert torch.equal(dm.test_set.images, torch.from_numpy(images).permute(0, 3, 1, 2))  # pixels in place


def test_extra_adds_the_extra_images_to_training(svhn_dir):
    plain = SVHNDataModule(data_dir=str(svhn_dir), val_size=0.2)
    extra = SVHNDataModule(data_dir=str(svhn_dir), val_size=0.2, extra=True)
    plain.setup("fit")
    extra.setup("fit")
    assert (len(plain.train_set), len(plain.val_set)) == (240, 60)
    assert (len(extra.train_set), len(extra.val_set)) == (400, 100)  # 300 + 200, the validation drawn from both
    extra.setup("test")
    assert len(extra.test_set) == 100
    assert "extra_32x32.mat" in extra.expected_files() and "extra_32x32.mat" not in plain.expected_files()


def test_a_svhn_file_that_fails_the_official_md5_is_one_line_naming_it(svhn_dir, tmp_path):
    shutil.copytree(svhn_dir / "SVHN", tmp_path / "SVHN")  # without the fixture's SHA256SUMS
    with pytest.raises(CorruptDataError, match="official checksum") as caught:
        SVHNDataModule(data_dir=str(tmp_path)).prepare_data()
    assert str(tmp_path / "SVHN") in one_line(caught)


def test_a_damaged_mat_file_is_one_line_naming_it(svhn_dir, tmp_path):
    shutil.copytree(svhn_dir / "SVHN", tmp_path / "SVHN")
    test_file = tmp_path / "SVHN" / "test_32x32.mat"
    test_file.write_bytes(test_file.read_bytes()[:400])
    write_sha256sums(tmp_path)  # sums that match the damaged file: only reading it finds the damage
    with pytest.raises(CorruptDataError, match="cannot read") as caught:
        SVHNDataModule(data_dir=str(tmp_path)).setup("test")
    assert str(test_file) in one_line(caught)


def test_a_mat_file_of_something_else_is_one_line(tmp_path):
    from scipy.io import savemat

    (tmp_path / "SVHN").mkdir()
    for split in ("train", "test"):
        savemat(tmp_path / "SVHN" / f"{split}_32x32.mat", {"X": torch.zeros(28, 28, 5).numpy(), "y": [[1] * 5]})
    write_sha256sums(tmp_path)
    with pytest.raises(CorruptDataError, match="does not hold SVHN's X") as caught:
        SVHNDataModule(data_dir=str(tmp_path)).setup("test")
    assert "test_32x32.mat" in one_line(caught)


def test_svhn_without_scipy_names_the_extra(monkeypatch, run_cli, tmp_path):
    monkeypatch.setitem(sys.modules, "scipy", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'lightning-cnn\[svhn\]'") as caught:
        SVHNDataModule(data_dir=str(tmp_path))
    one_line(caught)
    code, err = run_cli("fit", "--data", "SVHNDataModule", "--trainer.default_root_dir", tmp_path)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "pip install 'lightning-cnn[svhn]'" in errors[0], err
    assert "Traceback" not in err


def test_svhn_downloads_the_official_files_and_extra_only_when_asked(svhn_dir, tmp_path, monkeypatch):
    calls = []

    def fake_download(url: str, root: str, filename: str, md5: str) -> None:
        calls.append((url, filename, md5))
        Path(root).mkdir(parents=True, exist_ok=True)
        shutil.copy(svhn_dir / "SVHN" / filename, Path(root) / filename)

    monkeypatch.setattr(svhn_module, "download_url", fake_download)
    sums = {split: hashlib.md5((svhn_dir / "SVHN" / name).read_bytes()).hexdigest() for split, (_, name, _) in
            SVHN.split_list.items()}  # fmt: skip
    official = {split: [url, name, sums[split]] for split, (url, name, _) in SVHN.split_list.items()}
    monkeypatch.setattr(SVHN, "split_list", official)  # the fixture's files are now the "official" ones
    dm = SVHNDataModule(data_dir=str(tmp_path), val_size=50)
    dm.prepare_data()
    assert [name for _, name, _ in calls] == ["train_32x32.mat", "test_32x32.mat"]
    assert calls[0] == ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "train_32x32.mat", sums["train"])
    SVHNDataModule(data_dir=str(tmp_path), extra=True).prepare_data()
    assert [name for _, name, _ in calls[2:]] == ["extra_32x32.mat"]
    dm.setup("fit")
    assert len(dm.train_set) == 250


# --- both --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fixture", "options"),
    [
        ("CIFAR100DataModule", "cifar100_dir", ["--data.label_mode", "coarse"]),
        ("SVHNDataModule", "svhn_dir", ["--data.extra", "true"]),
    ],
)
def test_fit_runs_end_to_end(run_cli, request, tmp_path, name, fixture, options):
    data_dir = request.getfixturevalue(fixture)
    code, err = run_cli(
        "fit", "--model", "SimpleCNN", "--data", name, "--data.data_dir", data_dir, *options,
        "--data.augment+=RandomCrop", "--data.augment.padding", "2", "--trainer.fast_dev_run", "true",
        "--trainer.default_root_dir", tmp_path, *QUICK,
    )  # fmt: skip
    assert code == 0, err


def test_both_are_registered_with_their_shapes_and_recipes():
    assert {"CIFAR100DataModule", "SVHNDataModule"} <= set(DATAMODULES)
    assert CIFAR100DataModule.input_shape == SVHNDataModule.input_shape == (3, 32, 32)
    rows = {row["recipe"]: row for row in recipe_rows()}
    cifar10, cifar100 = rows["configs/cifar10/resnet20.yaml"], rows["configs/cifar100/resnet20.yaml"]
    assert cifar100["shape"] == "3×32×32" and cifar100["params"] - cifar10["params"] == 90 * (64 + 1)  # 90 more outputs
    assert rows["configs/svhn/convnet_bn_dropout.yaml"]["shape"] == "3×32×32"
