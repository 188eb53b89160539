"""``python -m benchmarks.gpu_check --smoke``: every cell of the GPU check runs on the CPU and lands in the results,
so the script is ready (and cannot rot) for the first GPU machine."""

from __future__ import annotations

import json

from benchmarks import gpu_check


def test_smoke_run_fills_every_cell_and_writes_json_and_markdown(tmp_path):
    results = gpu_check.main(["--smoke", "--output", str(tmp_path)])
    rows = results["throughput"]
    cells = {(r["model"], r["precision"], r["compile"], r["channels_last"]) for r in rows}
    assert len(cells) == len(rows) == len(gpu_check.MODELS) * len(gpu_check.PRECISIONS) * 2 * 2
    for row in rows:
        assert "error" not in row and "skipped" not in row, row
        assert row["ours_images_per_s"] > 0 and row["plain_images_per_s"] > 0 and row["ratio"] > 0
    assert results["augmentation"]["ours_images_per_s"] > 0 and results["augmentation"]["tutorial_images_per_s"] > 0
    assert len(results["time_to_target"]) == len(gpu_check.FAST_RECIPES)
    for cell in results["time_to_target"]:
        assert cell["per_epoch"], cell  # one validated epoch on tiny data
    assert results["ddp"]["scaling_efficiency"] > 0, results["ddp"]
    saved = json.loads((tmp_path / "gpu-cpu-smoke.json").read_text())
    assert saved["throughput"] == json.loads(json.dumps(rows, default=str))
    markdown = (tmp_path / "gpu-cpu-smoke.md").read_text()
    assert markdown.count("| ResNet18 |") == markdown.count("| FastCIFARNet |") == len(rows) // 2
    assert "scaling efficiency" in markdown and "tutorial" in markdown
