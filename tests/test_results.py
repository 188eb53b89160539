"""``make results``: the script that regenerates every figure the docs quote runs end to end in its quick mode."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import results


@pytest.fixture
def data_dir(mnist_dir: Path, image_folder_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One data folder with the tiny MNIST and the tiny CIFAR-10 JPEG archive, its decode cache in this test."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "MNIST").symlink_to(mnist_dir / "MNIST")
    for name in ("SHA256SUMS", results.CIFAR_JPEG):
        if (mnist_dir / name).exists():
            (root / name).symlink_to(mnist_dir / name)
    (root / results.CIFAR_JPEG).unlink(missing_ok=True)
    (root / results.CIFAR_JPEG).symlink_to(image_folder_files / results.CIFAR_JPEG)
    monkeypatch.setenv("LIGHTNING_CNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "argv", ["results"])  # the in-process fits replace sys.argv[1:]
    return root


def test_quick_mode_runs_every_part_and_writes_the_tables(data_dir, tmp_path):
    results.main(["--quick", "--data_dir", str(data_dir), "--out", str(tmp_path / "out")])
    written = json.loads((tmp_path / "out" / "cpu-quick.json").read_text())
    assert sorted(written["parts"]) == sorted(results.PARTS)
    assert not [part for part, record in written["parts"].items() if "skipped" in record]
    (run,) = written["parts"]["recipe"]["runs"]
    assert 0 <= run["test_acc"] <= 1 and run["checkpoint"] == "last.ckpt"  # the annealed schedule's last epoch
    assert all(row["ours_s"] > 0 for row in written["parts"]["overhead"]["rows"])
    assert len(set(written["parts"]["loggers"]["val_acc"].values())) == 1  # every logger got the same value
    shown = written["parts"]["predict_export"]
    assert shown["predicted"] == shown["files"] and shown["predict_acc"] == pytest.approx(shown["test_acc"])
    page = (tmp_path / "out" / "cpu-quick.md").read_text()
    assert written["machine"]["torch"] in page
    assert [line for line in page.splitlines() if line.startswith("## ")] == [
        f"## {results.TITLES[part][0]}" for part in results.PARTS
    ]
    assert not (tmp_path / "out" / "cpu.json").exists()  # a quick check never replaces real figures


def test_a_part_without_its_data_says_what_is_missing_and_keeps_the_others(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    earlier = {"parts": {"memory": {"date": "2026-01-01", "wall_s": 1.0, "rows": []}}}
    (out / "cpu.json").write_text(json.dumps(earlier))
    results.main(["--parts", "recipe", "pipeline", "--data_dir", str(tmp_path / "empty"), "--out", str(out)])
    page = (out / "cpu.md").read_text()
    assert f"Not measured: needs MNIST (its raw files in {tmp_path / 'empty'}/MNIST/raw" in page
    assert f"Not measured: needs the CIFAR-10 JPEG copy ({tmp_path / 'empty'}/{results.CIFAR_JPEG})" in page
    assert json.loads((out / "cpu.json").read_text())["parts"]["memory"]["date"] == "2026-01-01"


def test_recipes_measured_a_few_at_a_time_keep_the_earlier_rows_and_their_dates():
    def row(name: str, acc: float, date: str | None = None) -> dict:
        return {"config": f"configs/mnist/{name}.yaml", "test_acc": [acc], **({"date": date} if date else {})}

    earlier = {"date": "2026-01-01", "rows": [row("lenet5", 0.99), row("alexnet", 0.98, "2026-01-02")]}
    now = {"date": "2026-02-01", "rows": [row("alexnet", 0.97, "2026-02-01"), row("mlp", 0.96, "2026-02-01")]}
    merged = results.keep_earlier_rows(now, earlier)["rows"]
    assert [(r["config"].split("/")[-1], r["test_acc"], r["date"]) for r in merged] == [
        ("mlp.yaml", [0.96], "2026-02-01"),
        ("lenet5.yaml", [0.99], "2026-01-01"),
        ("alexnet.yaml", [0.97], "2026-02-01"),
    ]
