"""predict-files: one CSV row per readable file, the training preprocessing applied (its accuracy on a test folder is
the `test` subcommand's test/acc), and every kind of bad file reported by name and skipped."""

from __future__ import annotations

import csv
import os
import signal
import socket
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightning_cnn.cli import cli_main
from lightning_cnn.data.image_files import decode_file
from lightning_cnn.errors import CorruptDataError
from lightning_cnn.inference.trained import load_trained
from lightning_cnn.run_folder import resolve_checkpoint
from lightning_cnn.tools import predict_files
from tests.helpers.runs import fit_tiny_run
from tests.helpers.writers import IMAGE_FOLDER_CLASSES, write_image_folder


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A LeNet-5 trained briefly on a tiny RGB image folder: (run folder, data root with train/ and test/)."""
    root = tmp_path_factory.mktemp("predict_files")
    write_image_folder(root / "data" / "train", 200, seed=20)
    write_image_folder(root / "data" / "test", 60, seed=21)
    data = [
        "--data", "ImageFolderDataModule",
        "--data.root", str(root / "data"),
        "--data.train_dir", "train",
        "--data.test_dir", "test",
        "--data.cache_dir", str(root / "cache"),
        "--data.data_dir", str(root),
        "--data.decode_workers", "1",
        "--data.batch_size", "16",
    ]  # fmt: skip
    return fit_tiny_run(root / "runs", data), root / "data"


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_checkpoint_records_the_preprocessing(folder_run):
    run, _ = folder_run
    trained = load_trained(run)
    prep = trained.preprocessing
    assert prep.input_shape == (3, 32, 32) and prep.classes == IMAGE_FOLDER_CLASSES
    assert len(prep.mean) == 3 and all(0 < s < 1 for s in prep.std)
    assert trained.checkpoint_path == resolve_checkpoint(run) and trained.checkpoint_path.name != "last.ckpt"
    assert not trained.model.training


def test_csv_accuracy_equals_test_acc(folder_run, run_cli, tmp_path):
    """Files decoded and normalized as in training: accuracy from the CSV (true class = parent folder) is `test`'s."""
    run, data = folder_run
    ckpt = resolve_checkpoint(run)
    cli = cli_main(["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(ckpt)])
    test_acc = float(cli.trainer.callback_metrics["test/acc"])

    out = tmp_path / "predictions.csv"
    code, err = run_cli("predict-files", "--ckpt_path", run, data / "test", "--output", out, "--top_k", "3")
    assert code == 0, err
    rows = read_csv(out)
    files = sorted(p for p in (data / "test").rglob("*") if p.is_file())
    assert sorted(Path(r["file"]) for r in rows) == files
    assert list(rows[0]) == ["file", "class", "probability"] + [
        f"top{i}_{what}" for i in (1, 2, 3) for what in ("class", "probability")
    ]
    for row in rows:
        probs = [float(row[f"top{i}_probability"]) for i in (1, 2, 3)]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-5
        assert row["class"] == row["top1_class"] and row["probability"] == row["top1_probability"]
    correct = sum(Path(r["file"]).parent.name == r["class"] for r in rows)
    assert correct == round(test_acc * len(rows))
    assert f"({correct}/{len(rows)})" in err.strip().splitlines()[-1]


def test_classify_from_python_agrees_with_predict_files(folder_run, run_cli, tmp_path):
    run, data = folder_run
    out = tmp_path / "predictions.csv"
    assert run_cli("predict-files", "--ckpt_path", run, data / "test", "--output", out)[0] == 0
    rows = read_csv(out)
    trained = load_trained(run)
    results = trained.classify([row["file"] for row in rows])
    assert [name for name, _ in results] == [row["class"] for row in rows]
    assert [p for _, p in results] == pytest.approx([float(row["probability"]) for row in rows], abs=1e-6)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(CorruptDataError, match="empty.png"):
        trained.classify([rows[0]["file"], tmp_path / "empty.png"])


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` pixels (no pixel data): a decompression bomb's signature."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def write_odd_files(folder: Path) -> tuple[list[str], dict[str, str]]:
    """Readable files of every mode, and bad ones: (names predicted, {name: expected reason fragment})."""
    folder.mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("L").save(folder / "gray.png")
    Image.fromarray(rgb).convert("RGBA").save(folder / "rgba.png")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    (folder / "deep").mkdir()  # folders are walked recursively
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(folder / "deep" / "gray16.png")
    Image.fromarray(rgb).save(folder / "big.jpg")
    jpeg, png = (folder / "big.jpg").read_bytes(), (folder / "rgba.png").read_bytes()
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "text.png").write_text("not an image\n")
    (folder / "bomb.png").write_bytes(png_claiming(50_000, 50_000))
    (folder / "notes.txt").write_text("not picked up from a folder walk: no image extension\n")
    good = ["gray.png", "rgba.png", "palette.png", "cmyk.jpg", "gray16.png", "big.jpg"]
    bad = {
        "empty.png": "cannot identify image file",
        "truncated.jpg": "truncated",
        "truncated.png": "",
        "text.png": "cannot identify image file",
        "bomb.png": "decompression bomb",
    }
    return good, bad


def test_bad_files_reported_and_skipped(folder_run, run_cli, tmp_path):
    run, _ = folder_run
    good, bad = write_odd_files(tmp_path / "odd")
    out = tmp_path / "odd.csv"
    code, err = run_cli(
        "predict-files", "--ckpt_path", run, tmp_path / "odd", tmp_path / "missing.jpg", "--output", out
    )
    assert code == 0, err
    assert sorted(Path(r["file"]).name for r in read_csv(out)) == sorted(good)
    lines = err.strip().splitlines()
    for name, reason in bad.items():
        (line,) = [line for line in lines if f"/{name} " in line]
        assert line.startswith("skipped ") and reason in line, line
    assert any("missing.jpg (no such file or folder)" in line for line in lines)
    assert lines[-1].startswith(f"predicted {len(good)} file(s)") and f"skipped {len(bad) + 1} unreadable" in lines[-1]
    assert not any("notes.txt" in line for line in lines)


def test_max_pixels_refuses_large_images(folder_run, run_cli, tmp_path):
    """A pixel limit below an image's size refuses it (PIL alone would only warn up to twice its limit)."""
    run, _ = folder_run
    Image.new("RGB", (40, 30)).save(tmp_path / "large.png")
    Image.new("RGB", (10, 10)).save(tmp_path / "small.png")
    out = tmp_path / "p.csv"
    code, err = run_cli("predict-files", "--ckpt_path", run, tmp_path, "--output", out, "--max_pixels", "1000")
    assert code == 0, err
    assert [Path(r["file"]).name for r in read_csv(out)] == ["small.png"]
    assert "large.png" in err and "decompression bomb" in err
    assert Image.MAX_IMAGE_PIXELS != 1000  # the limit is restored after the run


def test_nothing_predictable_exits_1_with_one_line(folder_run, run_cli, tmp_path):
    run, _ = folder_run
    (tmp_path / "empty_folder").mkdir()
    code, err = run_cli("predict-files", "--ckpt_path", run, tmp_path / "empty_folder", "--output", tmp_path / "a.csv")
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: no image files found")
    (tmp_path / "bad.png").write_text("text")
    code, err = run_cli("predict-files", "--ckpt_path", run, tmp_path / "bad.png", "--output", tmp_path / "b.csv")
    lines = err.strip().splitlines()
    assert code == 1 and lines[-1].startswith("error: none of the 1 files could be read") and len(lines) == 2
    assert not (tmp_path / "b.csv").exists()


def test_channels_follow_the_model(tmp_path):
    """RGB files become grayscale for a 1-channel model, grayscale files RGB for a 3-channel one, 16-bit scaled."""
    rgb = np.random.default_rng(1).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    assert decode_file(tmp_path / "rgb.png", (28, 28), 1).shape == (28, 28)
    as_rgb = decode_file(tmp_path / "gray.png", (32, 32), 3)
    assert as_rgb.shape == (32, 32, 3) and (as_rgb[..., 0] == as_rgb[..., 2]).all()
    deep = decode_file(tmp_path / "gray16.png", (30, 30), 1)
    assert np.array_equal(deep, rgb[..., 0])


def test_fifos_sockets_and_devices_are_skipped_with_a_reason_and_never_opened(folder_run, run_cli, tmp_path):
    run, data = folder_run
    folder = tmp_path / "mixed"
    folder.mkdir()
    images = sorted((data / "test").rglob("*.jpg"))[:3]
    for image in images:
        (folder / image.name).write_bytes(image.read_bytes())
    os.mkfifo(folder / "fifo.png")  # opening it for reading would wait for a writer forever
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "socket.png"))
    (folder / "device.png").symlink_to("/dev/zero")  # reading it never ends
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("predict-files blocked"))
    signal.alarm(120)
    try:
        out = tmp_path / "predictions.csv"
        code, err = run_cli("predict-files", "--ckpt_path", run, folder, "/dev/null", "--output", out, "--workers", 1)
    finally:
        signal.alarm(0)
        listener.close()
    assert code == 0, err
    assert sorted(Path(row["file"]).name for row in read_csv(out)) == sorted(image.name for image in images)
    assert f"skipped {folder / 'fifo.png'} (a FIFO, not an image file)" in err
    assert f"skipped {folder / 'socket.png'} (a socket, not an image file)" in err
    assert f"skipped {folder / 'device.png'} (a device, not an image file)" in err
    assert "skipped /dev/null (a device, not an image file)" in err


@pytest.mark.parametrize("where", ["a folder", "under a file", "read-only"])
def test_an_output_that_cannot_be_written_fails_before_anything_is_predicted(
    folder_run, run_cli, tmp_path, monkeypatch, where
):
    run, data = folder_run
    monkeypatch.setattr(predict_files, "load_trained", lambda *a: pytest.fail("loaded the model before the check"))
    read_only = tmp_path / "ro"
    if where == "read-only":
        if os.geteuid() != 0:
            pytest.skip("a read-only mount needs root (root ignores permission bits)")
        read_only.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(read_only)], check=True)
    (tmp_path / "a_file").write_text("")
    output = {"a folder": tmp_path, "under a file": tmp_path / "a_file" / "p.csv", "read-only": read_only / "p.csv"}
    try:
        code, err = run_cli("predict-files", "--ckpt_path", run, data / "test", "--output", output[where])
    finally:
        if where == "read-only":
            subprocess.run(["umount", "-l", str(read_only)], check=True)
    assert code == 2
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert f"--output: {output[where]} is a folder" in line or f"--output: cannot write {output[where]}" in line, line
