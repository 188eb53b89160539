"""Our batched augmentations vs kornia's on the same batches: images/s of each and the ratio.

Run: ``python -m benchmarks.augment_vs_kornia`` (needs kornia: ``pip install -e '.[dev]'`` has it).
Both sides run interleaved, batch by batch, so machine load affects them alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from benchmarks.augment_policies import measure
from lightning_cnn.data import augment as ours


def kornia_pipelines() -> dict[str, dict[str, Callable[[torch.Tensor], torch.Tensor]]]:
    """Per augmentation: ours and kornia's, each a function of a float batch in [0, 1]."""
    import kornia.augmentation as K

    pairs = {
        "crop(pad 4) + flip": (
            [ours.RandomCrop(4), ours.HorizontalFlip()],
            K.AugmentationSequential(K.RandomCrop((32, 32), padding=4), K.RandomHorizontalFlip()),
        ),
        "rotation(15)": ([ours.Rotation(15)], K.RandomRotation(15.0, p=1.0)),
        "resized crop": ([ours.RandomResizedCrop()], K.RandomResizedCrop((32, 32))),
        "color jitter": (
            [ours.ColorJitter(0.4, 0.4, 0.4, 0.1)],
            K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0),
        ),
        "gaussian noise": ([ours.GaussianNoise(0.05)], K.RandomGaussianNoise(std=0.05, p=1.0)),
        "random erasing": ([ours.RandomErasing(p=1.0)], K.RandomErasing(p=1.0)),
    }

    def pipeline(steps: list) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda images: ours.apply_all(steps, images)

    return {name: {"ours": pipeline(steps), "kornia": theirs} for name, (steps, theirs) in pairs.items()}


def op_rates(batch_size: int = 256, batches: int = 40) -> dict[str, dict[str, float]]:
    """Per augmentation, images/s of ours and of kornia's on the same random batch of ``batch_size``×3×32×32."""
    torch.manual_seed(0)
    images = torch.rand(batch_size, 3, 32, 32)
    return {name: measure(runs, images, batches, "cpu") for name, runs in kornia_pipelines().items()}


def main(batch_size: int = 256, batches: int = 40) -> None:
    print(f"batch {batch_size}×3×32×32 float32, {batches} batches each, threads={torch.get_num_threads()}")
    print(f"{'augmentation':22s} {'ours img/s':>12s} {'kornia img/s':>13s} {'ours/kornia':>12s}")
    for name, rate in op_rates(batch_size, batches).items():
        print(f"{name:22s} {rate['ours']:12,.0f} {rate['kornia']:13,.0f} {rate['ours'] / rate['kornia']:11.2f}×")


if __name__ == "__main__":
    main()
