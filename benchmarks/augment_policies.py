"""Our augmentation policies vs kornia's and torchvision v2's on the same batches: images/s and ratios.

Run: ``python -m benchmarks.augment_policies [--device cuda] [--batch_size 256] [--batches 20] [--threads N]`` (needs
kornia: ``pip install -e '.[dev]'`` has it).

What each side does differs, and the table says so:

* ours: every image draws its own operations and magnitudes;
* kornia (``kornia.augmentation.auto``): one sub-policy per call for the whole batch, magnitudes per image;
* torchvision v2 on the batch: one operation and one magnitude per call for the whole batch;
* torchvision v2 per image: the same transform called on each image in a loop: per image, like ours.

All sides run interleaved, batch by batch, so machine load affects them alike.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from lightning_cnn.data.policies import AutoAugment, RandAugment, TrivialAugmentWide


def contenders(device: str) -> dict[str, dict[str, Callable[[torch.Tensor], torch.Tensor]]]:
    """Per policy: the name of each implementation → a function of a float batch in [0, 1]."""
    import kornia.augmentation.auto as K
    import torchvision.transforms.v2 as T

    def per_image(transform: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda images: torch.stack([transform(image) for image in images])

    tv = {
        "RandAugment(2, 9)": T.RandAugment(num_ops=2, magnitude=9),
        "TrivialAugmentWide": T.TrivialAugmentWide(),
        "AutoAugment(CIFAR-10)": T.AutoAugment(T.AutoAugmentPolicy.CIFAR10),
    }
    kornia = {
        "RandAugment(2, 9)": K.RandAugment(n=2, m=9),
        "TrivialAugmentWide": K.TrivialAugment(),
        "AutoAugment(CIFAR-10)": K.AutoAugment("cifar10"),
    }
    ours = {
        "RandAugment(2, 9)": RandAugment(num_ops=2, magnitude=9),
        "TrivialAugmentWide": TrivialAugmentWide(),
        "AutoAugment(CIFAR-10)": AutoAugment(),
    }
    return {
        name: {
            "ours": ours[name],
            "kornia (op per batch)": kornia[name].to(device),
            "tv2 (op per batch)": tv[name],
            "tv2 per image": per_image(tv[name]),
        }
        for name in ours
    }


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(runs: dict[str, Callable], images: torch.Tensor, batches: int, device: str) -> dict[str, float]:
    """Images/s of each run over ``batches`` batches, after 3 warm-up batches; the order alternates per batch."""
    seconds = dict.fromkeys(runs, 0.0)
    names = list(runs)
    for i in range(batches + 3):
        for name in names if i % 2 else names[::-1]:
            sync(device)
            start = time.perf_counter()
            with torch.no_grad():
                runs[name](images)
            sync(device)
            if i >= 3:
                seconds[name] += time.perf_counter() - start
    return {name: batches * len(images) / s for name, s in seconds.items()}


def policy_rates(device: str = "cpu", batch_size: int = 256, batches: int = 20) -> dict[str, dict[str, float]]:
    """Per policy, images/s of each implementation on the same random batch of ``batch_size``×3×32×32 images."""
    torch.manual_seed(0)
    images = torch.rand(batch_size, 3, 32, 32, device=device)
    return {name: measure(runs, images, batches, device) for name, runs in contenders(device).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"batch {args.batch_size}×3×32×32 float32 on {args.device}, {args.batches} batches each,"
        f" torch {torch.__version__} with {torch.get_num_threads()} threads"
    )
    table = policy_rates(args.device, args.batch_size, args.batches)
    sides = list(next(iter(table.values())))
    print(f"{'policy':22s}" + "".join(f"{side:>22s}" for side in sides) + "  (img/s; ours ÷ each)")
    for name, rate in table.items():
        cells = [f"{rate['ours']:22,.0f}"] + [
            f"{rate[side]:>12,.0f} ({rate['ours'] / rate[side]:5.1f}×)" for side in sides[1:]
        ]
        print(f"{name:22s}" + "".join(cells), flush=True)


if __name__ == "__main__":
    main()
