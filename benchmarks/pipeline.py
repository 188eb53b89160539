"""Benchmark 1, the input pipeline alone: images/s of our training batches vs the tutorial pipeline.

Ours: in-memory uint8 batches → float → RandomCrop(padding 4) + HorizontalFlip → normalize, batched, in
this process. Tutorial: torchvision ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``,
``ToTensor``, ``Normalize`` on PIL images in a DataLoader with 2 workers. Both yield the same normalized
float batches of 128 from the same 45,000 CIFAR-shaped images (the CIFAR-10 JPEG copy).

    python -m benchmarks.pipeline [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import alternate, best, cifar_jpeg, machine, seed, torch_threads, tutorial_loader
from lightning_cnn.data.augment import HorizontalFlip, RandomCrop


def measure(rounds: int = 3, limit_batches: int | None = None) -> dict[str, float]:
    """Images/s of the tutorial pipeline and of ours (default threads and one thread), best of ``rounds``."""
    dm = cifar_jpeg(batch_size=128, augment=[RandomCrop(padding=4), HorizontalFlip()])
    n = len(dm.train_set) if limit_batches is None else min(len(dm.train_set), 128 * limit_batches)

    def ours(threads: int | None = None) -> float:
        with torch_threads(threads):
            start = time.perf_counter()
            for _, batch in zip(range(limit_batches or len(dm.train_set)), dm.train_dataloader(), strict=False):
                dm.prepare_batch(batch, train=True)
            return time.perf_counter() - start

    def tutorial() -> float:
        start = time.perf_counter()
        loader = tutorial_loader(dm, batch_size=128, workers=2)
        for _ in zip(range(limit_batches or len(dm.train_set)), loader, strict=False):
            pass
        return time.perf_counter() - start

    # one torch thread as well, so the comparison measures the pipelines, not intra-op threading
    runs = {"tutorial": tutorial, "ours": ours, "ours, 1 thread": lambda: ours(threads=1)}
    times = alternate(runs, rounds)
    return {"images": n} | {name: n / best(seconds) for name, seconds in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit_batches", type=int, default=None, help="this many batches per epoch (a smoke test)")
    args = parser.parse_args()
    seed()
    print(f"benchmark 1: pipeline only, images 3×32×32, batch 128\nmachine: {machine()}")
    rate = measure(args.rounds, args.limit_batches)
    print(f"tutorial (PIL transforms, 2 workers): {rate['tutorial']:,.0f} images/s ({rate['images']} images)")
    for name in ("ours", "ours, 1 thread"):
        print(
            f"{name + ' (batched tensor ops):':37s} {rate[name]:,.0f} images/s,"
            f" ratio {rate[name] / rate['tutorial']:.1f}× the tutorial"
        )


if __name__ == "__main__":
    main()
