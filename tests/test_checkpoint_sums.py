"""A checkpoint is the file its run wrote: each one's SHA-256 is recorded beside it when it is written and checked
on every load. A damaged one is one line naming it and the newest checkpoint of the run that still verifies, from
which a resume goes on; a checkpoint from elsewhere (no record) loads, saying it could not be verified."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from lightning_cnn.checkpoints import read_checkpoint, recorded_sums, sha256, sum_file
from tests.helpers.runs import QUICK, fit_tiny_run


@pytest.fixture(scope="module")
def trained(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_tiny_run(tmp_path_factory.mktemp("runs"), ["--data.data_dir", str(mnist_dir)])


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "lightning_logs" / "version_0"
    shutil.copytree(trained, copy)
    return copy


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = os.urandom(4096)  # same length: a bad disk, a broken copy
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # an interrupted sync


def zero_block(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[1024:5120] = bytes(4096)
    path.write_bytes(bytes(data))


def test_every_checkpoint_a_run_writes_has_its_sha256_beside_it(trained):
    checkpoints = sorted((trained / "checkpoints").glob("*.ckpt"))
    assert len(checkpoints) == 2  # the best epoch and last.ckpt
    for checkpoint in checkpoints:
        assert recorded_sums(checkpoint) == {sha256(checkpoint)}
        assert sum_file(checkpoint).read_text() == f"{sha256(checkpoint)}  {checkpoint.name}\n"
    assert not list((trained / "checkpoints").glob("*.tmp"))


@pytest.mark.parametrize("damage", [flip_bytes, truncate, zero_block])
def test_a_damaged_checkpoint_is_named_with_the_newest_that_verifies_and_a_resume_goes_on_from_it(
    run, run_cli, mnist_dir, damage
):
    last = run / "checkpoints" / "last.ckpt"
    good = next(p for p in (run / "checkpoints").glob("epoch*.ckpt"))
    damage(last)
    data = ["--data.data_dir", mnist_dir, *QUICK, "--trainer.limit_train_batches", "8"]
    code, err = run_cli("test", "--config", run / "config.yaml", "--ckpt_path", last, *data)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1 and "Traceback" not in err, err
    assert f"{last} is not the file its run wrote" in errors[0]
    assert errors[0].endswith(f"the newest checkpoint of this run that verifies is {good}: give --ckpt_path {good}")
    # what the line offers: the run goes on from that checkpoint, in its own folder
    code, err = run_cli("fit", "--config", run / "config.yaml", "--ckpt_path", good, *data, "--trainer.max_epochs", "2")
    assert code == 0, err
    resumed = read_checkpoint(last)  # written anew by the resumed run, and verified by this read
    assert resumed["epoch"] == 1 and recorded_sums(last) == {sha256(last)}
    assert (run / "checkpoints" / "last.ckpt.damaged").is_file()  # the damaged bytes are kept, out of the way
    assert not list((run / "checkpoints").glob("last-v*.ckpt"))


def test_a_checkpoint_from_elsewhere_loads_and_says_it_could_not_be_verified(run, run_cli, mnist_dir, tmp_path):
    shared = tmp_path / "shared.ckpt"
    shutil.copy(run / "checkpoints" / "last.ckpt", shared)  # the file alone, as someone shares it
    data = ["--data.data_dir", mnist_dir, *QUICK, "--trainer.limit_test_batches", "1"]
    code, err = run_cli("test", "--ckpt_path", shared, *data, "--trainer.default_root_dir", tmp_path / "elsewhere")
    assert code == 0, err
    said = [line for line in err.splitlines() if "not verified" in line]
    assert said == [f"{shared}: no SHA-256 record beside it (a checkpoint from elsewhere): not verified"]


def test_a_checkpoint_replaced_while_its_record_is_updated_still_verifies(run):
    """A kill between the record and the rename leaves the old file under a record that accepts both."""
    last = run / "checkpoints" / "last.ckpt"
    old = sha256(last)
    from lightning_cnn.checkpoints import record_sum

    record_sum(last, "0" * 64, old)  # the state just before os.replace: new digest written, old one kept
    assert read_checkpoint(last)["epoch"] == 0
    torch.save({"state_dict": {}}, last)  # nor is a file that matches neither accepted
    with pytest.raises(Exception, match="is not the file its run wrote"):
        read_checkpoint(last)
