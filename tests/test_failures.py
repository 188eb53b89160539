"""File-system faults end as one ``error:`` line naming the path, never a traceback; a run that fails before its
first optimizer step removes the folder it created, a later failure keeps the folder and its last good checkpoint
and names them."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lightning_cnn.cli import ArgumentParser
from lightning_cnn.training.checkpoint_io import AtomicCheckpointIO
from tests.helpers.faults import fill_disk
from tests.helpers.runs import QUICK

SHORT = [
    *QUICK, "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--data.batch_size", "16",
    "--trainer.num_sanity_val_steps", "0", "--preview.num_images", "0", "--report.num_images", "0",
]  # fmt: skip
AS_ROOT = os.geteuid() == 0  # root can mount a small tmpfs; others get the same faults from a patched write


@contextlib.contextmanager
def small_disk(folder: Path, read_only: bool = False) -> Iterator[Path]:
    """A 2 MB tmpfs at ``folder`` (read-only once ``read_only``), unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], check=True)
    try:
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def error_line(err: str) -> str:
    assert "Traceback" not in err, err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


def fit(run_cli, mnist_dir: Path, root: Path, *args: object) -> tuple[int, str]:
    return run_cli("fit", "--data.data_dir", mnist_dir, "--trainer.default_root_dir", root, *SHORT, *args)


def patch_writes_from(monkeypatch, epoch: int, code: int) -> None:
    """Without root: every checkpoint written from epoch ``epoch`` on fails with ``code``, as the disk would."""
    save = AtomicCheckpointIO.save_checkpoint

    def failing(self, checkpoint, path, storage_options=None):
        if checkpoint["epoch"] >= epoch:
            raise OSError(code, os.strerror(code), f"{path}.tmp")
        save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", failing)


def test_a_disk_full_after_the_first_epoch_keeps_the_run_and_names_its_last_good_checkpoint(
    run_cli, mnist_dir, tmp_path, monkeypatch
):
    root = tmp_path / "disk"
    with small_disk(root) if AS_ROOT else contextlib.nullcontext(root):
        if AS_ROOT:
            args = ["--trainer.callbacks+=tests.helpers.faults.FillDiskAt", f"--trainer.callbacks.path={root}/filler"]
        else:
            args = []
            patch_writes_from(monkeypatch, 1, errno.ENOSPC)
        code, err = fit(run_cli, mnist_dir, root, "--trainer.max_epochs", 3, *args)
        assert code == 1
        line = error_line(err)
        run = root / "lightning_logs" / "version_0"
        last = run / "checkpoints" / "last.ckpt"
        assert "No space left on device" in line and f"{run}/" in line, line
        assert f"the run folder {run} is kept with its last good checkpoint {last}" in line, line
        assert torch.load(last, weights_only=False)["epoch"] == 0
        assert not list(run.rglob("*.tmp"))


def test_a_disk_full_before_the_first_step_removes_the_run_folder_it_created(run_cli, mnist_dir, tmp_path, monkeypatch):
    root = tmp_path / "disk"
    with small_disk(root) if AS_ROOT else contextlib.nullcontext(root):
        (root / "lightning_logs" / "version_0").mkdir(parents=True)  # an earlier run, left alone
        if AS_ROOT:
            fill_disk(root / "filler")
        else:  # the first file a run writes is its config.yaml

            def no_space(self, config, path, **kwargs):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

            monkeypatch.setattr(ArgumentParser, "save", no_space)
        code, err = fit(run_cli, mnist_dir, root, "--trainer.max_epochs", 1)
        assert code == 1
        line = error_line(err)
        assert "No space left on device" in line and str(root / "lightning_logs" / "version_1") in line, line
        assert sorted(p.name for p in (root / "lightning_logs").iterdir()) == ["version_0"]


@pytest.mark.skipif(not AS_ROOT, reason="a read-only mount needs root (root ignores permission bits)")
def test_a_read_only_folder_is_one_line_naming_it(run_cli, mnist_dir, tmp_path):
    with small_disk(tmp_path / "ro", read_only=True) as root:
        code, err = fit(run_cli, mnist_dir, root, "--trainer.max_epochs", 1)
        assert code == 2  # found by the pre-flight check, before anything is written
        line = error_line(err)
        assert "Read-only file system" in line and str(root) in line and "default_root_dir" in line, line
        assert not any(root.iterdir())


def test_a_file_where_the_run_folder_should_be_is_one_line_naming_it(run_cli, mnist_dir, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file")
    code, err = fit(run_cli, mnist_dir, blocker, "--trainer.max_epochs", 1)
    assert code == 2  # found by the pre-flight check, before anything is written
    line = error_line(err)
    assert str(blocker) in line, line
    assert blocker.read_text() == "a file" and sorted(p.name for p in tmp_path.iterdir()) == ["not_a_folder"]
