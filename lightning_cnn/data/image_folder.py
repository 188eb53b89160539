"""ImageFolderDataModule: a folder of class sub-folders of image files, decoded once into memory.

The images (JPEG, PNG, ... any size and mode) are decoded in parallel, resized to ``image_size`` and
kept as one uint8 tensor like every other data module here; the decoded tensors are cached on disk (by
default in the user's cache folder, whatever the current folder), so the second run starts in a second.
Each stage decodes only the images of the splits it uses: ``test`` the test split alone. A ``.tar.gz`` of
the folder works too: it is unpacked once into the cache folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from lightning_cnn.data.augment import BatchAugmentation
from lightning_cnn.data.base import DATAMODULES, ImageDataModule
from lightning_cnn.data.image_files import (
    CACHE_ENV_VAR,
    class_folders,
    decode_files,
    folder_key,
    is_archive,
    list_files,
    resolve_cache_dir,
    unpack_archive,
)
from lightning_cnn.data.mix import BatchMix
from lightning_cnn.errors import ConfigError, DataNotFoundError

MAX_REPORTED = 20  # unreadable files named one by one, then a count


@DATAMODULES.register
class ImageFolderDataModule(ImageDataModule):
    """Images in ``<root>/<train_dir>/<class>/*`` (and optionally ``<root>/<test_dir>/<class>/*``).

    Class names are the sorted sub-folder names of the training folder, so ``num_classes``,
    ``classes`` and ``input_shape`` are known as soon as the module is built. Files that cannot be
    decoded (corrupt, not an image) are named in a warning and skipped.

    Args:
        root: a folder, or a ``.tar.gz`` / ``.tgz`` / ``.tar`` archive of one; a relative path is looked
            for in the current folder, then in ``data_dir``.
        train_dir: the folder of class sub-folders for training and validation, relative to ``root``.
        test_dir: an optional folder of class sub-folders for testing, relative to ``root``.
        image_size: every image is resized (shorter side) and centre-cropped to this size: ``32`` or
            ``[height, width]``.
        grayscale: decode every file as 1-channel grayscale; default 3-channel RGB, whatever the files hold.
        mean: per-channel mean of the [0, 1] pixels for normalization; default: computed from the
            training folder (and cached).
        std: per-channel standard deviation, as ``mean``.
        cache_dir: where decoded tensors and unpacked archives are kept; default ``$LIGHTNING_CNN_CACHE``,
            else ``$XDG_CACHE_HOME/lightning_cnn``, else ``~/.cache/lightning_cnn``: the same from any current
            folder, its entries keyed by each data folder's absolute path.
        cache: keep the decoded tensors on disk so the next run skips decoding.
        decode_workers: processes decoding files; default one per CPU core.
        data_dir: where to look for a relative ``root`` after the current folder; default
            ``$LIGHTNING_CNN_DATA``, else ``./data``.
        download: not used (there is nothing to download); kept for the shared interface.
        batch_size: see ``ImageDataModule``.
        eval_batch_size: see ``ImageDataModule``.
        num_workers: see ``ImageDataModule``.
        val_size, test_size: see ``ImageDataModule``; ``test_size`` holds a test split out of ``train_dir`` when there
            is no ``test_dir``.
        split_seed: see ``ImageDataModule``.
        augment: see ``ImageDataModule``.
        fold: see ``ImageDataModule``.
        num_folds: see ``ImageDataModule``.
        mix: see ``ImageDataModule``.
        bootstrap_seed: see ``ImageDataModule``.
        sample_weights: see ``ImageDataModule``.
    """

    name = "image folder"

    def __init__(
        self,
        root: str,
        train_dir: str = ".",
        test_dir: str | None = None,
        image_size: int | tuple[int, int] = 32,
        grayscale: bool = False,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        cache_dir: str | None = None,
        cache: bool = True,
        decode_workers: int | None = None,
        data_dir: str | None = None,
        download: bool = False,
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
        super().__init__(
            data_dir=data_dir, download=download, batch_size=batch_size, eval_batch_size=eval_batch_size,
            num_workers=num_workers, val_size=val_size, split_seed=split_seed, augment=augment,
            fold=fold, num_folds=num_folds, mix=mix, bootstrap_seed=bootstrap_seed, test_size=test_size,
            sample_weights=sample_weights,
        )  # fmt: skip
        shape = self.shape_of(image_size, grayscale)
        channels = shape[0]
        for key, value in (("mean", mean), ("std", std)):
            if value is not None and len(value) != channels:
                raise ConfigError(f"data.{key} needs {channels} values (one per channel), got {list(value)}")
        if std is not None and min(std) <= 0:
            raise ConfigError(f"data.std values must be above 0, got {list(std)}")
        if decode_workers is not None and decode_workers < 1:
            raise ConfigError(f"data.decode_workers must be at least 1, got {decode_workers}")
        self.image_size: tuple[int, int] = (shape[1], shape[2])
        self.channels = channels
        self.cache_dir = resolve_cache_dir(cache_dir)
        self._cache_dir_given = cache_dir is not None
        self.use_cache = cache
        self.decode_workers = decode_workers or len(os.sched_getaffinity(0))
        self.root = self._resolve_root(root)
        self.train_folder = self.root / train_dir
        self.test_folder = self.root / test_dir if test_dir is not None else None
        if test_dir is not None and test_size is not None:
            raise ConfigError(
                f"data.test_size={test_size} holds a test split out of train_dir, but data.test_dir={test_dir!r} is"
                " the test split already: give one of them"
            )
        for key, folder in (("train_dir", self.train_folder), ("test_dir", self.test_folder)):
            if folder is not None and not folder.is_dir():
                there = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
                raise DataNotFoundError(
                    f"data.{key}: no folder {folder.relative_to(self.root)} in {self.root} (its folders:"
                    f" {', '.join(there) or 'none'}); give the folder of class sub-folders, relative to data.root"
                )
        self.classes = tuple(class_folders(self.train_folder))
        if len(self.classes) < 2:
            raise ConfigError(
                f"data.root: {self.train_folder} has one class folder ({self.classes[0]}); a classifier needs at least"
                f" two: put each class's images in its own sub-folder, {self.train_folder}/<class>/<image files>"
            )
        self.num_classes = len(self.classes)
        self.input_shape = shape
        if self.test_folder is not None:
            extra = sorted(set(class_folders(self.test_folder)) - set(self.classes))
            if extra:
                raise ConfigError(
                    f"data.test_dir: classes {extra} in {self.test_folder} are not in the training folder"
                    f" {self.train_folder} (classes: {', '.join(self.classes)})"
                )
        self._given_stats = (mean, std)
        self._mean_std = (tuple(mean), tuple(std)) if mean is not None and std is not None else None
        self._listing: dict[Path, tuple[list[Path], list[int], list[tuple[str, int, int]]]] = {}

    @staticmethod
    def shape_of(image_size: int | Sequence[int], grayscale: bool) -> tuple[int, int, int]:
        """(channels, height, width) of the images that ``image_size`` and ``grayscale`` give, before any is read."""
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"data.image_size must be a positive int or [height, width], got {image_size}")
        return (1 if grayscale else 3, *size)

    def written_folders(self) -> dict[str, Path]:
        """The cache folder, by what chose it: the option, ``$LIGHTNING_CNN_CACHE``, or the default."""
        if not self.use_cache:
            return {}
        if self._cache_dir_given:
            return {"data.cache_dir": self.cache_dir}
        chosen_by = f"${CACHE_ENV_VAR}" if os.environ.get(CACHE_ENV_VAR) else "the default, in the user's cache folder"
        return {f"data.cache_dir ({chosen_by})": self.cache_dir}

    def _resolve_root(self, root: str) -> Path:
        path = Path(root).expanduser()
        candidates = [path] if path.is_absolute() else [Path.cwd() / path, self.data_dir / path]
        found = next((p for p in candidates if p.exists()), None)
        if found is None:
            raise DataNotFoundError(f"data.root not found: {root} (looked in {', '.join(map(str, candidates))})")
        if found.is_file() and not is_archive(found):
            raise ConfigError(
                f"data.root: {found} is a file, not a folder or a .tar.gz, .tgz or .tar archive of one (unpack other"
                " archives, such as .zip, and give the folder)"
            )
        self._root_found = found  # the folder or archive given, for resolved_paths
        return unpack_archive(found, self.cache_dir) if is_archive(found) else found

    def resolved_paths(self) -> dict[str, Path]:
        """``root`` as found (the archive itself, not where it was unpacked), the cache and the data folders."""
        return {**super().resolved_paths(), "root": self._root_found, "cache_dir": self.cache_dir}

    # --- normalization statistics --------------------------------------------------------------
    @property
    def mean(self) -> tuple[float, ...]:  # type: ignore[override]
        return self._stats()[0]

    @property
    def std(self) -> tuple[float, ...]:  # type: ignore[override]
        return self._stats()[1]

    def _stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self._mean_std is None:  # given neither by the config nor by a checkpoint: those of the training images
            self._set_stats(self._load_files(self.train_folder, self._kept())[0])
        assert self._mean_std is not None
        return self._mean_std

    def _set_stats(self, images: Tensor) -> None:
        """Mean and std of the training folder (train + validation images) for whatever the config left out."""
        if self._mean_std is None:
            computed = channel_mean_std(images)
            mean, std = self._given_stats
            self._mean_std = (tuple(mean or computed[0]), tuple(std or computed[1]))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the statistics a checkpoint recorded for what the config leaves out, unless this module computed
        its own (``fit`` does): ``test`` and ``validate`` then normalize as training did and decode no training
        image for statistics."""
        record = state_dict.get("preprocessing") if isinstance(state_dict, dict) else None
        if (
            self._mean_std is not None
            or not isinstance(record, dict)
            or record.get("datamodule") != type(self).__name__
        ):
            return
        recorded = [record.get("mean"), record.get("std")]
        if not all(isinstance(values, list) and len(values) == self.channels for values in recorded):
            return
        mean, std = ([float(v) for v in values] for values in recorded)
        if min(std) <= 0:
            return
        given_mean, given_std = self._given_stats
        self._mean_std = (tuple(given_mean or mean), tuple(given_std or std))

    # --- loading ---------------------------------------------------------------------------------
    def files_present(self) -> bool:
        return self.train_folder.is_dir()

    def expected_files(self) -> str:
        return f"class sub-folders of images in {self.train_folder}"

    def prepare_data(self) -> None:
        """Nothing to download: the folders were checked when the module was built."""

    def setup(self, stage: str | None = None) -> None:
        no_test = self.test_folder is None and self.test_size is None
        super().setup("fit" if stage is None and no_test else stage)

    def training_labels(self) -> Tensor:
        """The class of every file of the training folder, from the folder it is in: no image is decoded."""
        return torch.tensor(self._files(self.train_folder)[1], dtype=torch.long)

    def _kept(self) -> Tensor:
        """Indices of the training folder's files for training and validation: all but those ``test_size`` holds
        out."""
        return self.held_out_split(self.training_labels())[0]

    def load_training_subset(self, indices: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        kept = self._kept()
        images, labels, found = self._load_files(self.train_folder, indices, within=kept)
        if torch.equal(indices, kept):  # the training and validation images: the statistics are theirs
            self._set_stats(images)
        return images, labels, found

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        """Every image of the training folder (``train``) or of the test folder."""
        if not train and self.test_folder is None:
            raise ConfigError(
                "data.test_dir is not set: give a folder of class sub-folders (relative to data.root) to test on, or"
                " hold some training images out with data.test_size (e.g. 0.2)"
            )
        folder = self.train_folder if train else self.test_folder
        assert folder is not None
        images, labels, _ = self._load_files(folder)
        return images, labels

    def listed_split(self, train: bool) -> tuple[Tensor, Tensor, Tensor, list[Path]]:
        """Every readable image of the training (``train``) or test folder, its label and its place in the folder's
        listing, and the listing's files: an audit names each image, and each unreadable file, by them."""
        folder = self.train_folder if train else self.test_folder
        if folder is None:
            raise ConfigError("data.test_dir is not set: there is no test folder to list")
        images, labels, found = self._load_files(folder)
        return images, labels, found, self._files(folder)[0]

    def _files(self, folder: Path) -> tuple[list[Path], list[int], list[tuple[str, int, int]]]:
        """The folder's files, their labels and (relative path, size, modification time), listed once: every split
        this module draws from the folder indexes one listing."""
        if folder not in self._listing:
            listing = list_files(folder, self.classes)
            if not listing[0]:
                raise DataNotFoundError(
                    f"no image files in {folder}: expected <class>/<image files> for the classes"
                    f" {', '.join(self.classes)}"
                )
            self._listing[folder] = listing
        return self._listing[folder]

    def _cache_file(self, folder: Path, indices: Tensor) -> Path:
        """The cache entry of the folder's files at ``indices``, keyed by the folder's absolute path, the files'
        names, sizes and modification times, and the decoding options."""
        stats = self._files(folder)[2]
        key = folder_key([stats[i] for i in indices.tolist()], self.image_size, self.channels, folder)
        return self.cache_dir / "images" / f"{folder.name or 'root'}-{key}.pt"

    def _load_files(
        self, folder: Path, indices: Tensor | None = None, within: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The images, labels and indices (in the folder's listing) of the readable files at ``indices`` (sorted;
        default all): from the cache entry of these files, of the files ``within`` or of the whole folder when it
        holds them, else decoded (and cached as an entry of these files only)."""
        paths, labels, _ = self._files(folder)
        every = torch.arange(len(paths))
        indices = every if indices is None else indices
        wanted = torch.zeros(len(paths), dtype=torch.bool)
        wanted[indices] = True
        holding = [indices] + ([within] if within is not None and bool(wanted[within].sum() == len(indices)) else [])
        groups = {self._cache_file(folder, group): group for group in (*holding, every)}  # one key, the same files
        for cache_file, group in groups.items() if self.use_cache else ():
            entry = read_entry(cache_file)
            if entry is not None:
                return select(entry, group, wanted, folder)
        chosen = list(range(len(indices)))
        rank_zero_info(f"decoding {len(chosen)} images in {folder} with {self.decode_workers} processes")
        # each file's place among ``indices`` goes in as its label: the decoder hands back those of the readable files
        images, found, errors = decode_files(
            [paths[i] for i in indices.tolist()], chosen, self.image_size, self.channels, self.decode_workers
        )
        readable = set(found.tolist())
        entry = {
            "images": images,
            "labels": torch.tensor(labels, dtype=torch.long)[indices[found]],
            "found": found,
            "errors": errors,
            "unreadable": [i for i in chosen if i not in readable],  # in the order of ``errors``
        }
        if self.use_cache and len(images):
            cache_file = next(iter(groups))
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            scratch = cache_file.with_suffix(f".{os.getpid()}.tmp")
            torch.save(entry, scratch)
            scratch.replace(cache_file)
        return select(entry, indices, wanted, folder)


# a cache entry: the images and labels of the readable files among those it was made of, those files' places among
# them ("found"), and the places of the unreadable ones with the reason each failed ("unreadable", "errors")
ENTRY_KEYS = ("images", "labels", "found", "errors", "unreadable")


def read_entry(cache_file: Path) -> dict[str, Any] | None:
    """A cache entry (see ``ImageFolderDataModule._load_files``), or None when there is none or it is unreadable."""
    if not cache_file.is_file():
        return None
    try:
        loaded = torch.load(cache_file, weights_only=True)
        return {key: loaded[key] for key in ENTRY_KEYS}
    except Exception as err:  # noqa: BLE001 - a damaged cache file is rebuilt, not fatal
        rank_zero_warn(f"ignoring the unreadable cache file {cache_file} ({err}); decoding again")
        return None


def select(entry: dict[str, Any], group: Tensor, wanted: Tensor, folder: Path) -> tuple[Tensor, Tensor, Tensor]:
    """The images, labels and file indices of the cache ``entry`` of the files ``group`` (indices in the folder's
    listing; the entry counts its files by their place in it) whose files are ``wanted`` (a mask over the
    listing); the unreadable wanted files are named in one warning."""
    unreadable = group[torch.as_tensor(entry["unreadable"], dtype=torch.long)].tolist()
    report_unreadable([error for i, error in zip(unreadable, entry["errors"], strict=True) if wanted[i]], folder)
    images, labels, found = entry["images"], entry["labels"], group[entry["found"]]
    rows = wanted[found].nonzero().flatten()
    if not len(rows):
        raise DataNotFoundError(f"no readable images in {folder}: all {int(wanted.sum())} files failed to decode")
    if len(rows) < len(found):
        images, labels, found = images[rows], labels[rows], found[rows]
    return images, labels, found


def report_unreadable(errors: list[str], folder: Path) -> None:
    """Warn once, naming each file that could not be decoded (the first ``MAX_REPORTED``)."""
    if not errors:
        return
    shown = "; ".join(errors[:MAX_REPORTED])
    more = f"; and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
    rank_zero_warn(f"skipped {len(errors)} unreadable file(s) in {folder}: {shown}{more}")


def channel_mean_std(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images on the [0, 1] scale, in chunks (no float copy)."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for chunk in images.split(4096):
        values = chunk.to(torch.float64).div_(255)
        total += values.sum(dim=(0, 2, 3))
        squares += values.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp(min=1e-12).sqrt()
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())
