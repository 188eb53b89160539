"""The recipes shipped with the package, with their model, data, epochs and the test accuracy ``make results``
measured: ``lightning-cnn recipes``. Any of them runs from any folder: ``lightning-cnn fit --config
mnist/lenet5.yaml``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning_cnn.config_files import PACKAGED, packaged_recipes
from lightning_cnn.tools.options import ToolParser
from lightning_cnn.tools.tables import format_table

# recipe → {"test_acc": lowest test accuracy over the measured runs, "runs": how many}, written by make results
MEASURED = PACKAGED / "measured.json"


def _class_name(section: Any) -> str:
    class_path = section.get("class_path", "") if isinstance(section, dict) else section or ""
    return str(class_path).rsplit(".", 1)[-1] or "-"


def recipe_rows(root: Path = PACKAGED, measured: Path = MEASURED) -> list[dict[str, str]]:
    """One row per recipe: its ``--config`` name, model, data module, epochs and measured test accuracy."""
    figures = json.loads(measured.read_text()) if measured.is_file() else {}
    rows = []
    for name, config in packaged_recipes(root).items():
        figure = figures.get(name)
        accuracy = f"{100 * figure['test_acc']:.2f} % (lowest of {figure['runs']})" if figure else "not measured"
        rows.append(
            {
                "recipe": name,
                "model": _class_name(config.get("model")),
                "data": _class_name(config.get("data")),
                "epochs": str((config.get("trainer") or {}).get("max_epochs", "-")),
                "test accuracy": accuracy,
            }
        )
    return rows


def main(args: list[str] | None = None) -> None:
    parser = ToolParser(prog="lightning-cnn recipes", description=__doc__.splitlines()[0])
    parser.parse_args(args)
    rows = recipe_rows()
    header = list(rows[0])
    print(format_table(header, [[row[key] for key in header] for row in rows], right=("epochs",)))
    print(f"\nrun one from any folder: lightning-cnn fit --config mnist/lenet5.yaml  (the files: {PACKAGED})")


if __name__ == "__main__":
    main()
