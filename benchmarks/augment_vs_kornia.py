"""Our batched augmentations vs kornia's on the same batches: images/s of each and the ratio.

Run: ``python benchmarks/augment_vs_kornia.py`` (needs ``pip install kornia``; it is not a dependency).
Both sides run interleaved, batch by batch, so machine load affects them alike.
"""

from __future__ import annotations

import time

import torch

from lightning_cnn.data import augment as ours


def kornia_pipelines() -> dict[str, tuple[list, object]]:
    import kornia.augmentation as K

    return {
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


def main(batch_size: int = 256, batches: int = 40) -> None:
    torch.manual_seed(0)
    images = torch.rand(batch_size, 3, 32, 32)
    print(f"batch {batch_size}×3×32×32 float32, {batches} batches each, threads={torch.get_num_threads()}")
    print(f"{'augmentation':22s} {'ours img/s':>12s} {'kornia img/s':>13s} {'ours/kornia':>12s}")
    for name, (our_list, theirs) in kornia_pipelines().items():
        times = {"ours": 0.0, "kornia": 0.0}
        for i in range(batches + 3):  # the first three warm up
            for side in ("ours", "kornia") if i % 2 else ("kornia", "ours"):
                start = time.perf_counter()
                with torch.no_grad():
                    ours.apply_all(our_list, images) if side == "ours" else theirs(images)
                if i >= 3:
                    times[side] += time.perf_counter() - start
        rate = {side: batches * batch_size / t for side, t in times.items()}
        print(f"{name:22s} {rate['ours']:12,.0f} {rate['kornia']:13,.0f} {rate['ours'] / rate['kornia']:11.2f}×")


if __name__ == "__main__":
    main()
