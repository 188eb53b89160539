"""The ``preview`` tool: the grid of a config's first augmented training batch as a PNG, several configs applied in
order as for fit, and bad options refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightning_cnn.tools.preview import main

CONFIGS = Path(__file__).parent.parent / "configs"


def test_preview_command_writes_the_grid_of_a_config(mnist_dir, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(
        "seed_everything: 3\ndata:\n  class_path: MNISTDataModule\n  init_args:\n"
        f"    data_dir: {mnist_dir}\n    val_size: 200\n"
        "    augment: [{class_path: Rotation, init_args: {degrees: 30}}]\n"
    )
    main(["--config", str(config), "--out", str(tmp_path / "a.png"), "--num_images", "4"])
    main(["--config", str(config), "--out", str(tmp_path / "b.png"), "--num_images", "4", "--data.augment", "[]"])
    a, b = (np.asarray(Image.open(tmp_path / name)) for name in ("a.png", "b.png"))
    assert a.shape == b.shape == (2 * (84 + 12 + 2), 2 * (84 + 2), 3)
    assert not np.array_equal(a, b)  # the same batch (same seed), rotated in one and not the other
    # several --config apply in order, as for fit: a fragment after the recipe changes its data section
    fragment = tmp_path / "no_augment.yaml"
    fragment.write_text("data:\n  init_args:\n    augment: []\n")
    main(["--config", str(config), "--config", str(fragment), "--out", str(tmp_path / "c.png"), "--num_images", "4"])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "c.png")), b)
    assert "wrote" in capsys.readouterr().out


BAD_PREVIEWS = [
    (["--num_images", "0"], "--num_images must be 1 or more, got 0"),
    (["--config", "."], "config file . is a folder; give a file"),
]


@pytest.mark.parametrize(("args", "message"), BAD_PREVIEWS)
def test_preview_command_refuses_bad_options_in_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(CONFIGS / "mnist" / "lenet5.yaml"), "--out", str(tmp_path / "a.png"), *args])
    assert exit_.value.code == 1 and capsys.readouterr().err.strip() == f"error: {message}"
    assert not (tmp_path / "a.png").exists()
