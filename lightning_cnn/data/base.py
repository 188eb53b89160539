"""ImageDataModule: whole splits kept in memory as uint8 tensors, turned into floats on the device.

Decoding or converting every image in DataLoader workers on every epoch is the usual bottleneck for
small images; here a batch is a slice of one uint8 tensor, and ``on_after_batch_transfer`` converts
and normalizes it where the model runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from lightning import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from lightning_cnn.data.augment import BatchAugmentation, apply_all
from lightning_cnn.data.exclusion import Exclusion
from lightning_cnn.data.mix import BatchMix
from lightning_cnn.data.weighted import load_sample_weights, weighted_indices
from lightning_cnn.errors import ConfigError, CorruptDataError, DataNotFoundError
from lightning_cnn.internals import UnrepeatedDistributedSampler
from lightning_cnn.registry import Registry

DATA_ENV_VAR = "LIGHTNING_CNN_DATA"
WORKERS_PER_CORE = 4  # more DataLoader workers than this only compete for the cores (and a typo can fork thousands)


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The folder datasets live in: ``data_dir`` if given, else ``$LIGHTNING_CNN_DATA``, else ``./data``."""
    chosen = data_dir or os.environ.get(DATA_ENV_VAR) or "data"
    return Path(chosen).expanduser().absolute()


class TensorImages(Dataset):
    """Images (N, C, H, W) uint8 and labels (N,) int64; fetching a list of indices slices both at once."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"expected uint8 (N, C, H, W) images and N labels, got {images.shape}, {labels.shape}")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index]


class EpochShuffleSampler(Sampler[int]):
    """A random order that depends only on (seed, epoch): Lightning calls ``set_epoch`` before each epoch.

    Unlike ``RandomSampler`` it draws nothing from the global RNG, so a run resumed at an epoch boundary
    sees the same order as the uninterrupted run, and every epoch still sees a new order.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        yield from torch.randperm(self.size, generator=generator).tolist()


class SeededOrder(Sampler[int]):
    """One seeded random order of a split, the same every epoch: a limited evaluation (``limit_val_batches``,
    ``limit_test_batches``) then takes a sample of every class, not the first classes of a class-ordered split."""

    def __init__(self, size: int, seed: int) -> None:
        self.order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)


def new_folders(folder: Path) -> Callable[[], list[Path]]:
    """A function listing the folders at or under ``folder`` (and its missing parents) created since this call."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    before = {p for p in folder.rglob("*") if p.is_dir()} if folder.is_dir() else set()

    def created() -> list[Path]:
        under = [p for p in folder.rglob("*") if p.is_dir() and p not in before] if folder.is_dir() else []
        return sorted(under, key=lambda p: len(p.parts), reverse=True) + missing  # deepest first

    return created


def remove_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that is empty; keep any that holds something."""
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty (or gone): kept as it is
            folder.rmdir()


def check_split(
    images: Tensor, labels: Tensor, num_classes: int, input_shape: Sequence[int], sources: tuple[str, str]
) -> None:
    """Raise ``CorruptDataError`` naming the file (``sources``: of the images, of the labels) when images are not
    of ``input_shape`` or a label is outside [0, num_classes)."""
    shape = tuple(images.shape[1:])
    if shape != tuple(input_shape):
        raise CorruptDataError(
            f"{sources[0]}: the images are {'×'.join(map(str, shape))} (channels×height×width), expected"
            f" {'×'.join(map(str, input_shape))}; the file is not of this dataset, or damaged: replace it"
        )
    outside = (labels < 0) | (labels >= num_classes)
    if bool(outside.any()):
        bad = labels[outside]
        raise CorruptDataError(
            f"{sources[1]}: {len(bad)} of {len(labels)} labels are outside 0..{num_classes - 1} (the first is"
            f" {int(bad[0])}, at image {int(outside.nonzero()[0])}); the file is not of this dataset, or damaged:"
            " replace it"
        )


def run_seed() -> int:
    """The seed of this run (``seed_everything``), or torch's initial seed when none was set."""
    return int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed() % 2**31))


DEFAULT_VAL_FRACTION = 0.1  # without data.val_size: a tenth of the training images validates,
DEFAULT_VAL_MAX = 5000  # but never more than this many: MNIST and CIFAR-10 keep the 5,000 they always held out


def split_indices(
    total: int, val_size: int | float | None, seed: int, fold: int | None = None, num_folds: int = 5
) -> tuple[Tensor, Tensor]:
    """Training and validation indices of a training set of ``total`` images, from one seeded permutation.

    Without ``fold`` the first ``val_size`` images of the permutation (a count, or a fraction below 1; None: a tenth,
    at most ``DEFAULT_VAL_MAX``) validate.
    With ``fold`` the permutation is cut into ``num_folds`` near-equal parts and part ``fold`` validates, so the
    folds of one seed are disjoint and together cover the training set (k-fold cross-validation).
    """
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    if fold is not None:
        if num_folds > total:
            raise ConfigError(f"data.num_folds={num_folds} is more than the {total} training images")
        parts = torch.tensor_split(order, num_folds)
        return torch.cat([p for i, p in enumerate(parts) if i != fold]), parts[fold]
    n_val = round(val_size * total) if isinstance(val_size, float) else val_size
    if val_size is None:  # the default: a tenth of the images, at least one, at most DEFAULT_VAL_MAX
        n_val = max(1, min(DEFAULT_VAL_MAX, round(DEFAULT_VAL_FRACTION * total)))
    if n_val >= total:
        raise ConfigError(f"data.val_size={val_size} leaves no training images out of {total}")
    return order[n_val:], order[:n_val]


def stratified_holdout(labels: Tensor, size: int | float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices of the images kept and of ``size`` images held out (a count, or a fraction below 1), drawn class by
    class with a seeded generator so that each class is held out in its share: a test split for a set of images
    that has none of its own."""
    total = len(labels)
    n_held = round(size * total) if isinstance(size, float) else size
    if not 0 < n_held < total:
        raise ConfigError(f"data.test_size={size} holds out {n_held} of {total} images; leave some on each side")
    generator = torch.Generator().manual_seed(seed)
    classes, counts = labels.unique(return_counts=True)
    shares = counts.double() * n_held / total
    per_class = shares.floor().long()
    # the images the floors left over go to the classes with the largest remainders, the first such on a tie
    leftover = n_held - int(per_class.sum())
    per_class[torch.argsort(shares - per_class, descending=True, stable=True)[:leftover]] += 1
    held = []
    for label, n in zip(classes.tolist(), per_class.tolist(), strict=True):
        members = (labels == label).nonzero().flatten()
        held.append(members[torch.randperm(len(members), generator=generator)[:n]])
    held_out = torch.cat(held).sort().values
    kept = torch.ones(total, dtype=torch.bool)
    kept[held_out] = False
    return kept.nonzero().flatten(), held_out


def bootstrap_indices(indices: Tensor, seed: int) -> Tensor:
    """A bootstrap resample of ``indices``: as many, drawn with replacement with a seeded generator (bagging)."""
    draw = torch.randint(len(indices), (len(indices),), generator=torch.Generator().manual_seed(seed))
    return indices[draw]


# the splits each Lightning stage uses; any other stage (None) loads all three
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


def keep_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Collate function for ``TensorImages``: its ``__getitems__`` already returns a whole batch."""
    return batch


class ImageDataModule(LightningDataModule):
    """Base of every data module: a seeded train/val split of the training set, the official test set.

    Subclasses set the class attributes and implement ``files_present``, ``download_files``,
    ``expected_files`` and ``load_split``.

    Args:
        data_dir: folder holding the dataset; default ``$LIGHTNING_CNN_DATA``, else ``./data``.
        download: fetch the official files when they are missing.
        batch_size: training batch size (per process under DDP).
        eval_batch_size: validation/test batch size; default twice ``batch_size``.
        num_workers: DataLoader worker processes; 0 is fastest for in-memory tensors.
        val_size: validation images taken from the training set: a count, or a fraction below 1; by default a
            tenth of them, at most 5,000 (so a folder of a few dozen images needs no setting).
        test_size: hold out this many training images (a count, or a fraction below 1), seeded and class by class,
            as the test split: for a set of images without a test split of its own (an image folder without
            ``test_dir``).
        split_seed: seed of the train/validation split, independent of the training seed.
        fold: validate on fold ``fold`` (0 to ``num_folds`` - 1) of a seeded ``num_folds``-way split of the
            training set instead of on ``val_size`` images: k-fold cross-validation (``python -m lightning_cnn
            kfold`` runs every fold).
        num_folds: the number of folds when ``fold`` is set.
        bootstrap_seed: train on a bootstrap resample of the training split (as many images, drawn with
            replacement, seeded by this number) instead of the split itself; the validation split is untouched.
            Members of a bagging ensemble differ in this seed (``lightning-cnn bag`` sets it).
        sample_weights: train on a weighted resample of the training split instead: as many images, drawn with
            replacement with probability proportional to the weights in this file (one per training image, and the
            seed of the draw; see ``lightning_cnn.data.weighted``). ``lightning-cnn boost`` sets it for its members.
        augment: batched augmentations applied in order to training batches only, on the model's device,
            before normalization, e.g. ``[{class_path: RandomCrop, init_args: {padding: 4}},
            {class_path: HorizontalFlip}]`` (see ``lightning_cnn.data.augment``).
        mix: MixUp, CutMix or ``MixUpOrCutMix`` (see ``lightning_cnn.data.mix``), applied to training batches
            after ``augment``; their labels become (N, num_classes) target probabilities.
    """

    name: ClassVar[str]
    num_classes: ClassVar[int]
    input_shape: ClassVar[tuple[int, int, int]]
    mean: ClassVar[tuple[float, ...]]
    std: ClassVar[tuple[float, ...]]
    classes: ClassVar[tuple[str, ...]]
    # True for data whose images each have a set of labels (multi-hot targets); linked into the model by the CLI
    multi_label: ClassVar[bool] = False

    def __init__(
        self,
        data_dir: str | None = None,
        download: bool = True,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        val_size: int | float | None = None,
        split_seed: int = 42,
        augment: list[BatchAugmentation] | None = None,
        fold: int | None = None,
        num_folds: int = 5,
        mix: BatchMix | None = None,
        bootstrap_seed: int | None = None,
        test_size: int | float | None = None,
        sample_weights: str | None = None,
    ) -> None:
        super().__init__()
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and value < 1:
                raise ConfigError(f"data.{key} must be at least 1, got {value}")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if not 0 <= num_workers <= WORKERS_PER_CORE * cores:
            raise ConfigError(
                f"data.num_workers must be 0 to {WORKERS_PER_CORE * cores} ({WORKERS_PER_CORE} per CPU core here), got"
                f" {num_workers}; 0 is fastest for these in-memory datasets"
            )
        for key, size in (("val_size", val_size), ("test_size", test_size)):
            if size is not None and (size <= 0 or (isinstance(size, float) and size >= 1)):
                raise ConfigError(
                    f"data.{key} must be a number of images (1 or more) or a fraction in (0, 1), got {size}"
                )
        if num_folds < 2:
            raise ConfigError(f"data.num_folds must be at least 2, got {num_folds}")
        if fold is not None and not 0 <= fold < num_folds:
            raise ConfigError(f"data.fold must be 0 to {num_folds - 1} (data.num_folds={num_folds}), got {fold}")
        self.save_hyperparameters(ignore=["augment", "mix"])
        # a readable record (hparams.yaml, checkpoints) that needs no class to load
        self.hparams["augment"] = [repr(a) for a in augment or ()]
        self.hparams["mix"] = repr(mix) if mix is not None else None
        self.augment = list(augment or ())
        self.mix = mix
        self.data_dir = resolve_data_dir(data_dir)
        self.download = download
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or 2 * batch_size
        self.num_workers = num_workers
        self.val_size = val_size
        self.test_size = test_size
        self.split_seed = split_seed
        self.fold, self.num_folds = fold, num_folds
        self.bootstrap_seed = bootstrap_seed
        self.sample_weights = sample_weights
        self.train_set: TensorImages | None = None
        self.val_set: TensorImages | None = None
        self.test_set: TensorImages | None = None
        self.excluded: Exclusion | None = None  # fit --exclude: images an audit named, left out of the training split

    def resolved_paths(self) -> dict[str, Path]:
        """The folders this module's path options resolved to, by option: a run's config saves them absolute."""
        return {"data_dir": self.data_dir}

    # --- what a subclass provides -------------------------------------------------------------
    def files_present(self) -> bool:
        """Whether the raw files are in ``self.data_dir``."""
        raise NotImplementedError

    def download_files(self) -> None:
        """Fetch the official files into ``self.data_dir``."""
        raise NotImplementedError

    def expected_files(self) -> str:
        """Where the files should be, for error messages."""
        raise NotImplementedError

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        """The training (``train=True``) or test split as uint8 (N, C, H, W) images and int64 labels."""
        raise NotImplementedError

    # --- Lightning hooks ----------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Find the files, or download them (once, on the first process), and check them before any run
        folder is written."""
        if self.files_present():
            self.verify_files()
            return
        hint = f"copy the official files there, point data.data_dir or ${DATA_ENV_VAR} at a folder that holds them"
        if not self.download:
            raise DataNotFoundError(
                f"{self.name} not found: expected {self.expected_files()}; {hint}, or set data.download true"
            )
        created = new_folders(self.data_dir)
        try:
            self.download_files()
        except Exception as err:  # torchvision raises RuntimeError, URLError, OSError, ...
            remove_empty(created())  # a failed download leaves no empty folders behind
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataNotFoundError(
                f"{self.name} not found and the download failed ({reason}): expected {self.expected_files()}; {hint}"
            ) from err
        if not self.files_present():
            raise DataNotFoundError(f"{self.name} download finished but {self.expected_files()} is still missing")
        self.verify_files()

    def verify_files(self) -> None:
        """Raise ``CorruptDataError`` naming a file that fails its checksum; subclasses that know the sums
        override this (see data/checksums.py)."""

    def split_files(self, train: bool) -> tuple[str, str]:
        """The files a split's images and its labels are read from, for error messages; subclasses name them
        more precisely."""
        return self.expected_files(), self.expected_files()

    def written_folders(self) -> dict[str, Path]:
        """Folders this data module will write, by the key that sets them (checked before the run starts):
        ``data_dir`` when the files are still to be downloaded."""
        return {"data.data_dir": self.data_dir} if self.download and not self.files_present() else {}

    def load_checked_split(self, train: bool) -> tuple[Tensor, Tensor]:
        """``load_split`` whose result has this data module's image shape and only labels of its classes: a file
        that no checksum covers can hold anything, and a bad label would otherwise fail deep inside the loss."""
        images, labels = self.load_split(train)
        check_split(images, labels, self.num_classes, self.input_shape, self.split_files(train))
        return images, labels

    def training_labels(self) -> Tensor | None:
        """The labels of the whole training split, read without loading any image, or None (the default) when only
        loading the split tells them. Given them, the splits are drawn from the labels alone and each stage loads
        only the images of the splits it uses (``load_training_subset``)."""
        return None

    def load_training_subset(self, indices: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The images and labels of the training split at ``indices`` (sorted, distinct), and the indices they are:
        an image that cannot be read is left out. Only called when ``training_labels`` gives labels."""
        raise NotImplementedError

    def held_out_split(self, labels: Tensor) -> tuple[Tensor, Tensor | None]:
        """Indices of the training images kept for training and validation, and of those held out as the test
        split (``test_size``; None without it): the same for every stage and process, as it depends on the labels
        and ``split_seed`` only."""
        if self.test_size is None:
            return torch.arange(len(labels)), None
        return stratified_holdout(labels, self.test_size, self.split_seed)

    def training_splits(self, labels: Tensor) -> dict[str, Tensor]:
        """Indices into the training images of each split drawn from them: ``train`` and ``val``, and ``test`` with
        ``test_size``, which comes out first. ``train`` is not yet bootstrapped."""
        kept, held_out = self.held_out_split(labels)
        train, val = split_indices(len(kept), self.val_size, self.split_seed, self.fold, self.num_folds)
        train = kept[train] if self.excluded is None else self.excluded.drop(kept[train], labels, self.classes)
        splits = {"train": train, "val": kept[val]}
        return splits if held_out is None else {**splits, "test": held_out}

    def setup(self, stage: str | None = None) -> None:
        """Load the splits ``stage`` uses that are not loaded yet: ``fit`` train and validation, ``validate``
        validation, ``test`` and ``predict`` test, None all three."""
        wanted = STAGE_SPLITS.get(stage, ("train", "val", "test"))
        missing = [name for name in wanted if getattr(self, f"{name}_set") is None]
        from_training = [name for name in missing if name != "test" or self.test_size is not None]
        if from_training:
            self._setup_from_training(from_training)
        if "test" in missing and self.test_size is None:
            self.test_set = TensorImages(*self.load_checked_split(train=False))

    def _setup_from_training(self, names: list[str]) -> None:
        """Set the splits ``names`` drawn from the training images, loading only their images when the labels are
        known without them."""
        labels = self.training_labels()
        if labels is None:  # the whole training split is loaded anyway: every split drawn from it is set
            images, labels = self.load_checked_split(train=True)
            for name, indices in self.training_splits(labels).items():
                if getattr(self, f"{name}_set") is None:
                    setattr(self, f"{name}_set", self._split_set(name, images, labels, indices))
            return
        splits = self.training_splits(labels)
        # the held-out test images are loaded apart from the others: a stage uses either or both
        for group in ([name for name in names if name != "test"], [name for name in names if name == "test"]):
            if not group:
                continue
            needed = torch.cat([splits[name] for name in group]).unique()  # sorted
            images, loaded_labels, found = self.load_training_subset(needed)
            check_split(images, loaded_labels, self.num_classes, self.input_shape, self.split_files(train=True))
            row = torch.full((len(labels),), -1, dtype=torch.long)
            row[found] = torch.arange(len(found))
            for name in group:
                rows = row[splits[name]]
                rows = rows[rows >= 0]  # the unreadable images of the split are left out
                setattr(self, f"{name}_set", self._split_set(name, images, loaded_labels, rows))

    def _split_set(self, name: str, images: Tensor, labels: Tensor, indices: Tensor) -> TensorImages:
        """Split ``name`` of ``images``: the images at ``indices``, the training split resampled when bagging or
        boosting."""
        if name == "train" and self.bootstrap_seed is not None:
            indices = bootstrap_indices(indices, self.bootstrap_seed)
        if name == "train" and self.sample_weights is not None:
            indices = weighted_indices(indices, *load_sample_weights(self.sample_weights, len(indices)))
        return TensorImages(images[indices], labels[indices])

    def _eval_sampler(self, dataset: TensorImages) -> Sampler[int] | None:
        """Under several processes, each evaluates every n-th image of the split, unpadded.

        Lightning's own evaluation sampler pads the split with repeated images up to a multiple of the number
        of processes, so DDP metrics would count those twice; being a ``DistributedSampler``, this one is left
        in place by Lightning. Processes may then run one batch more or less than the others, which is safe in
        evaluation: nothing is synchronized per batch (``sync_dist`` and torchmetrics reduce at the epoch end).
        """
        trainer = self.trainer
        if trainer is None or trainer.world_size <= 1 or len(dataset) < trainer.world_size:
            return None
        return UnrepeatedDistributedSampler(
            dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
        )

    def _limited(self, dataset: TensorImages, limit_key: str) -> bool:
        """Whether the trainer evaluates only part of ``dataset`` (``limit_val_batches`` or ``limit_test_batches``)."""
        limit = getattr(self.trainer, limit_key, None) if self.trainer is not None else None
        if isinstance(limit, bool) or not isinstance(limit, (int, float)):
            return False
        return limit * self.eval_batch_size < len(dataset) if isinstance(limit, int) else limit < 1.0

    def _loader(self, dataset: TensorImages | None, train: bool, limit_key: str | None = None) -> DataLoader:
        assert dataset is not None, "setup() must run before asking for a dataloader"
        sampler = EpochShuffleSampler(len(dataset), run_seed()) if train else self._eval_sampler(dataset)
        if sampler is None and limit_key is not None and self._limited(dataset, limit_key):
            sampler = SeededOrder(len(dataset), self.split_seed)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            # a generator of its own: creating an iterator then draws nothing from the global RNG
            generator=torch.Generator().manual_seed(run_seed()),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=keep_batch,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False, limit_key="limit_val_batches")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False, limit_key="limit_test_batches")

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 → float in [0, 1] → augmented (training only) → normalized, on the model's device.

        Anything that is not an ``(uint8 images, labels)`` batch (the model summary's example input,
        already-float tensors) passes through unchanged.
        """
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and batch[0].dtype == torch.uint8):
            return batch
        training = self.trainer is not None and self.trainer.training  # false in sanity checks, val, test
        return self.prepare_batch(batch, train=training)

    def prepare_batch(self, batch: tuple[Tensor, Tensor], train: bool) -> tuple[Tensor, Tensor]:
        """A uint8 batch as the model sees it: floats, augmented (and mixed) when ``train``, normalized.

        With a ``mix``, a training batch's labels are (N, num_classes) target probabilities."""
        images, labels = batch
        images = images.float().div_(255)
        if train and self.augment:
            images = apply_all(self.augment, images)
        if train and self.mix is not None:
            images, labels = self.mix(images, labels, self.num_classes)
        return self.normalize(images), labels

    def train_class_counts(self) -> Tensor:
        """Images of each class in the training split (after the validation split): for class weights."""
        if self.train_set is None:
            self.setup("fit")
        assert self.train_set is not None
        return torch.bincount(self.train_set.labels, minlength=self.num_classes)

    def normalize(self, images: Tensor) -> Tensor:
        return normalize(images, self.mean, self.std)

    def denormalize(self, images: Tensor) -> Tensor:
        """Inverse of ``normalize``: back to [0, 1] for showing images."""
        return denormalize(images, self.mean, self.std)

    # --- what a trained model needs to see new images as in training ------------------------------
    def preprocessing(self) -> dict[str, Any]:
        """How images reach the model: shape, per-channel statistics, class names, and how files are resized.

        Saved in every checkpoint (``state_dict``) so a trained model can be used on new files without
        rebuilding the data module (which, for an image folder, would decode the training set for its statistics).
        """
        return {
            "datamodule": type(self).__name__,
            "input_shape": list(self.input_shape),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "classes": list(self.classes),
            "resize": "shorter side to the input size (bilinear), then centre crop",
        }

    def state_dict(self) -> dict[str, Any]:
        """Lightning stores this in checkpoints under the class name; see ``preprocessing``."""
        return {"preprocessing": self.preprocessing()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore: the preprocessing record is read by ``inference.trained``, not by training."""


# Every data module, registered where it is defined with ``@DATAMODULES.register``.
DATAMODULES: Registry[type[ImageDataModule]] = Registry("data modules")


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Float images in [0, 1], (N, C, H, W), standardized per channel: the one normalization used everywhere."""
    mean_t = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - mean_t) / std_t


def denormalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Inverse of ``normalize``: back to [0, 1]."""
    mean_t = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return images * std_t + mean_t
