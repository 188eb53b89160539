"""Exact and near-duplicate images among uint8 tensors: a DCT perceptual hash finds the candidate pairs, a pixel
difference confirms them.

The hash (pHash) is the sign of the 8×8 lowest DCT frequencies of a 32×32 grayscale copy against their median (63
bits, the constant term left out): a little noise, JPEG loss or a change of brightness leaves it within a few bits.
On digits it is too coarse alone (most upright ones of MNIST hash alike), so a pair within ``hamming`` bits counts
only when its pixels also agree: the L1 difference of the two images over the sum of each image's L1 deviation from
its own mean is at most ``tolerance`` (0 for identical pixels, 1 for unrelated images of the same contrast).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

HASH_SIDE = 32  # the grayscale copy the DCT is taken of
HASH_SIZE = 8  # the lowest HASH_SIZE × HASH_SIZE frequencies, less the constant term: 63 bits
HASH_BITS = HASH_SIZE * HASH_SIZE - 1
CHUNK = 2048  # hashes compared at once against the rest (a CHUNK × N float matrix)


@dataclass(frozen=True)
class DuplicatePairs:
    """Confirmed pairs ``(first, second)`` of rows of the images searched (``first < second``), each pair's Hamming
    distance between hashes and its pixel difference (0 for exact duplicates)."""

    first: Tensor
    second: Tensor
    hamming: Tensor
    difference: Tensor

    def __len__(self) -> int:
        return len(self.first)


def dct_matrix(n: int) -> Tensor:
    """The orthonormal DCT-II matrix of size ``n``: ``D @ x`` transforms the columns of ``x``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None]
    matrix = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    matrix[0] /= math.sqrt(2)
    return matrix.float()


def perceptual_hash(images: Tensor, batch: int = 8192) -> Tensor:
    """The 63-bit DCT pHash of uint8 (N, C, H, W) images, as (N, 63) bools."""
    dct = dct_matrix(HASH_SIDE)
    hashes = []
    for chunk in images.split(batch):
        gray = chunk.float().mean(1, keepdim=True)
        small = F.interpolate(gray, size=(HASH_SIDE, HASH_SIDE), mode="bilinear", align_corners=False)[:, 0]
        low = (dct @ small @ dct.T)[:, :HASH_SIZE, :HASH_SIZE].reshape(len(chunk), -1)[:, 1:]
        hashes.append(low > low.median(dim=1, keepdim=True).values)
    return torch.cat(hashes) if hashes else torch.zeros(0, HASH_BITS, dtype=torch.bool)


def hash_neighbours(hashes: Tensor, hamming: int) -> tuple[Tensor, Tensor, Tensor]:
    """Every pair ``i < j`` of rows of ``hashes`` within ``hamming`` bits, and their distances: an exhaustive search
    as one matrix product of ±1 vectors per chunk of rows (70,000 hashes take about half a minute on two cores)."""
    signs = hashes.float() * 2 - 1
    bits = hashes.shape[1]
    firsts, seconds = [], []
    for start in range(0, len(signs), CHUNK):
        similarity = signs[start : start + CHUNK] @ signs[start:].T  # bits - 2 * distance
        i, j = (similarity >= bits - 2 * hamming - 0.5).nonzero(as_tuple=True)
        above = j > i  # the upper triangle: each pair once, never an image with itself
        firsts.append(i[above] + start)
        seconds.append(j[above] + start)
    first = torch.cat(firsts) if firsts else torch.zeros(0, dtype=torch.long)
    second = torch.cat(seconds) if seconds else torch.zeros(0, dtype=torch.long)
    distance = (hashes[first] != hashes[second]).sum(1)
    return first, second, distance


def pixel_difference(images: Tensor, first: Tensor, second: Tensor, batch: int = 65536) -> Tensor:
    """For each pair of rows, the L1 difference of the two images over the sum of their L1 deviations from their own
    means: 0 for identical pixels, small for the same picture with a little noise."""
    flat = images.reshape(len(images), -1)
    out = []
    for a_rows, b_rows in zip(first.split(batch), second.split(batch), strict=True):
        a, b = flat[a_rows].float(), flat[b_rows].float()
        spread = (a - a.mean(1, keepdim=True)).abs().sum(1) + (b - b.mean(1, keepdim=True)).abs().sum(1)
        out.append((a - b).abs().sum(1) / spread.clamp(min=1.0))
    return torch.cat(out) if out else torch.zeros(0)


def find_duplicates(images: Tensor, hamming: int = 4, tolerance: float = 0.05) -> DuplicatePairs:
    """The exact and near-duplicate pairs among uint8 (N, C, H, W) ``images``: hashes within ``hamming`` bits and
    pixel difference at most ``tolerance``; sorted by difference, then by rows."""
    first, second, distance = hash_neighbours(perceptual_hash(images), hamming)
    difference = pixel_difference(images, first, second)
    kept = difference <= tolerance
    first, second, distance, difference = first[kept], second[kept], distance[kept], difference[kept]
    order = sorted(range(len(first)), key=lambda k: (float(difference[k]), int(first[k]), int(second[k])))
    index = torch.as_tensor(order, dtype=torch.long)
    return DuplicatePairs(first[index], second[index], distance[index], difference[index])
