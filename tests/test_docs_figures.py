"""The accuracies the README and the docs quote are the ones ``make results`` wrote in benchmarks/results/cpu.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks.results import percent

ROOT = Path(__file__).resolve().parents[1]
RESULTS = json.loads((ROOT / "benchmarks" / "results" / "cpu.json").read_text())["parts"]
PAGES = ["README.md", "docs/index.md", "docs/models.md"]


def measured_minimums() -> dict[str, str]:
    """Each MNIST recipe measured by ``make results`` → its minimum test accuracy over the seeds, as quoted."""
    return {row["config"]: percent(min(row["test_acc"])) for row in RESULTS["mnist_recipes"]["rows"]}


@pytest.mark.parametrize("page", PAGES)
def test_every_recipe_accuracy_in_a_table_is_the_measured_minimum(page):
    minimums = measured_minimums()
    quoted = 0
    for line in (ROOT / page).read_text().splitlines():
        recipe = re.search(r"`(configs/mnist/\w+\.yaml)`", line)
        accuracies = re.findall(r"\b\d{2}\.\d{2} %", line)
        if not line.startswith("|") or not recipe or not accuracies:
            continue
        assert recipe[1] in minimums, f"{page}: {recipe[1]} is quoted but make results did not measure it"
        assert accuracies == [minimums[recipe[1]]], f"{page}: {line}"
        quoted += 1
    assert page != "docs/models.md" or quoted == len(minimums)


@pytest.mark.parametrize("page", PAGES)
def test_the_main_recipe_figures_are_the_measured_ones(page):
    runs = RESULTS["recipe"]["runs"]
    accs = [run["test_acc"] for run in runs]
    own_seed = max((run for run in runs if run["seed"] == 42), key=lambda run: run["threads"])  # default threads
    prose = " ".join(line for line in (ROOT / page).read_text().splitlines() if not line.startswith("|"))
    for sentence in re.split(r"(?<=\.)\s+", " ".join(prose.split())):  # a decimal point has no space after it
        if "lenet5.yaml" in sentence:
            for figure in re.findall(r"\b\d{2}\.\d{2} %", sentence):
                assert figure in {percent(own_seed["test_acc"]), percent(min(accs)), percent(max(accs))}, sentence


def test_every_link_to_a_results_section_finds_it():
    # the docs quote the other figures by linking to the Results page's sections, whose titles make results writes
    titles = re.findall(r"^## (.+)$", (ROOT / "benchmarks" / "results" / "cpu.md").read_text(), flags=re.MULTILINE)
    anchors = {re.sub(r"\s+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower()) for title in titles}
    links = [(page.name, anchor) for page in (ROOT / "docs").glob("*.md")
             for anchor in re.findall(r"results\.md#([\w-]+)", page.read_text())]  # fmt: skip
    assert links and [link for link in links if link[1] not in anchors] == []
