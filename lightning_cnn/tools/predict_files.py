"""``python -m lightning_cnn predict-files``: class predictions of a trained run for image files, as a CSV.

Every file is decoded exactly as the training images were (``lightning_cnn.data.image_files.decode_file``:
any format and mode PIL reads, resized on its shorter side and centre-cropped to the training size, converted
to the training channels) and normalized with the run's statistics. Files that cannot be read are named on
stderr with the reason and skipped; the others are predicted. A run calibrated by ``lightning-cnn calibrate`` gives
probabilities of its logits divided by the stored temperature (``--calibrated false``: the raw softmax).
"""

from __future__ import annotations

import argparse
import csv
import os
import stat
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image

from lightning_cnn.data.image_files import decode_files
from lightning_cnn.errors import ConfigError, DataNotFoundError
from lightning_cnn.inference.calibration import applied_temperature
from lightning_cnn.inference.explain import check_explainable, prepare_folder, write_overlays
from lightning_cnn.inference.trained import TrainedModel, load_trained
from lightning_cnn.tools.options import (
    ToolParser,
    add_calibrated_option,
    add_device_option,
    add_trust_option,
    add_tta_option,
    resolve_device,
)

DECODE_BLOCK = 2000  # files decoded (in parallel) and predicted at a time: bounds memory for any number of files


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = ToolParser(
        prog="lightning-cnn predict-files",
        description="Predict the class of image files (PNG, JPEG, ... any size or mode) with a trained run; "
        "write one CSV row per file. Unreadable files are reported on stderr and skipped.",
    )
    parser.add_argument(
        "--ckpt_path",
        required=True,
        help="a checkpoint file, or a run folder (lightning_logs/version_N: its best checkpoint, else last.ckpt)",
    )
    parser.add_argument("files", nargs="+", metavar="FILE_OR_FOLDER", help="image files, or folders walked recursively")
    parser.add_argument("--output", default="predictions.csv", help="the CSV to write (default: %(default)s)")
    parser.add_argument("--top_k", type=int, default=3, help="classes listed per file, best first (default: 3)")
    parser.add_argument("--batch_size", type=int, default=256, help="images per forward pass (default: 256)")
    parser.add_argument(
        "--max_pixels",
        type=int,
        default=Image.MAX_IMAGE_PIXELS,
        help="files with more pixels than this are refused as possible decompression bombs (default: %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: one per CPU core)")
    parser.add_argument(
        "--explain",
        metavar="DIR",
        default=None,
        help="also write a Grad-CAM overlay PNG per file, for its top class, into DIR",
    )
    add_device_option(parser)
    add_trust_option(parser)
    add_calibrated_option(parser)
    add_tta_option(parser)
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(list(argv))
    for key in ("top_k", "batch_size", "max_pixels"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be at least 1, got {getattr(args, key)}")
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.explain is not None and not args.explain.strip():
        parser.error("--explain needs a folder to write the overlays into, got ''")
    return args


def is_image_name(path: Path) -> bool:
    """Whether ``path`` has an extension PIL opens (what a folder walk picks up)."""
    return path.suffix.lower() in Image.registered_extensions()


def not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file (a FIFO, socket or device would block or never end), or None."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        return f"{path} ({err.strerror.lower() if err.strerror else err})"
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}
    kind = next((name for test, name in kinds.items() if test(mode)), "not a regular file")
    return f"{path} ({kind}, not an image file)"


def find_files(items: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Regular files named directly (whatever their extension), and image files under named folders (recursively,
    sorted, hidden ones skipped); the second result names what does not exist or is no regular file (never opened:
    reading a FIFO or a device would block)."""
    files, skipped = [], []
    for item in items:
        path = Path(item)
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(n for n in names if not n.startswith(".") and is_image_name(Path(n))):
                    reason = not_a_regular_file(Path(root) / name)
                    files += [Path(root) / name] if reason is None else []
                    skipped += [reason] if reason is not None else []
        elif path.exists():
            reason = not_a_regular_file(path)
            files += [path] if reason is None else []
            skipped += [reason] if reason is not None else []
        else:
            skipped.append(f"{item} (no such file or folder)")
    return files, skipped


def check_output(output: Path) -> None:
    """Fail before anything is loaded or predicted when the CSV ``output`` cannot be written (a folder, a file in
    place of its folder, a read-only or full file system), naming it; an existing file is left as it was."""
    if output.is_dir():
        raise ConfigError(f"--output: {output} is a folder; give the path of a CSV file")
    existed = output.exists()
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with open(output, "a"):
            pass
    except OSError as err:
        raise ConfigError(f"--output: cannot write {output} ({err.strerror or err}); choose another file") from err
    if not existed:
        output.unlink()


def predict(
    trained: TrainedModel,
    files: Sequence[Path],
    batch_size: int,
    workers: int,
    progress: bool,
    temperature: float = 1.0,
) -> Iterator[tuple[Path, torch.Tensor] | str]:
    """For each readable file, (path, class probabilities of the logits divided by ``temperature``); for each
    unreadable one, ``"path (reason)"``."""
    from tqdm import tqdm

    prep = trained.preprocessing
    with tqdm(total=len(files), unit="file", disable=None if progress else True, file=sys.stderr) as bar:
        for start in range(0, len(files), DECODE_BLOCK):
            block = files[start : start + DECODE_BLOCK]
            # the file's index rides along as its "label", telling which files decoded
            images, kept, errors = decode_files(block, list(range(len(block))), prep.size, prep.channels, workers)
            yield from errors
            probabilities = trained.probabilities(images, batch_size, temperature)
            for index, probs in zip(kept.tolist(), probabilities, strict=True):
                yield block[index], probs
            bar.update(len(block))


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    check_output(Path(args.output))
    device = resolve_device(args.device)
    trained = load_trained(args.ckpt_path, device, trust=args.trust_checkpoint)
    if args.tta:
        trained = with_tta(trained)
    if args.explain is not None:  # a model Grad-CAM cannot explain is refused before anything is predicted
        check_explainable(trained.model, trained.preprocessing.input_shape, "--explain")
        prepare_folder(Path(args.explain), "--explain")
    args.temperature = run_temperature(trained, args.calibrated)
    files, bad = find_files(args.files)
    for line in bad:
        sys.stderr.write(f"skipped {line}\n")
    if not files:
        raise DataNotFoundError(f"no image files found in {', '.join(args.files)}; nothing to predict")
    workers = args.workers or len(os.sched_getaffinity(0))
    limit = Image.MAX_IMAGE_PIXELS
    # refuse images above the limit outright (PIL itself only warns below twice the limit); decoding worker
    # processes are forked, so they inherit both settings
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = args.max_pixels
        try:
            write_predictions(trained, files, bad, args, workers)
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def with_tta(trained: TrainedModel) -> TrainedModel:
    """The run with test-time augmentation, saying on stderr over which views."""
    trained = trained.with_tta()
    names = ", ".join(view.name for view in trained.views)
    sys.stderr.write(f"test-time augmentation: probabilities averaged over {len(trained.views)} views ({names})\n")
    return trained


def run_temperature(trained: TrainedModel, calibrated: bool) -> float:
    """The temperature of the run's ``calibration.json`` when ``calibrated`` and it was fit for this checkpoint, else 1;
    says on stderr in one line which, when the run has one."""
    temperature, note = applied_temperature(trained.checkpoint_path, calibrated)
    if note:
        sys.stderr.write(note + "\n")
    return temperature or 1.0


def write_predictions(
    trained: TrainedModel, files: list[Path], bad: list[str], args: argparse.Namespace, workers: int
) -> None:
    """Predict ``files`` into the CSV ``args.output``, reporting unreadable files; a summary line ends it."""
    if getattr(trained.model, "multi_label", False):
        write_label_sets(trained, files, bad, args, workers)
        return
    classes = trained.preprocessing.classes
    top_k = min(args.top_k, len(classes))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    predicted, correct, labelled = 0, 0, 0
    explained: list[tuple[Path, int]] = []  # (file, top class) for --explain
    with open(output, "w", newline="") as f:
        writer = csv.writer(f)
        header = ["file", "class", "probability"]
        for i in range(1, top_k + 1):
            header += [f"top{i}_class", f"top{i}_probability"]
        writer.writerow(header)
        results = predict(trained, files, args.batch_size, workers, not args.no_progress, args.temperature)
        for result in results:
            if isinstance(result, str):
                bad.append(result)
                sys.stderr.write(f"skipped {result}\n")
                continue
            path, probs = result
            values, indices = probs.topk(top_k)
            row: list[str] = [str(path), classes[int(indices[0])], f"{float(values[0]):.6f}"]
            for value, index in zip(values.tolist(), indices.tolist(), strict=True):
                row += [classes[index], f"{value:.6f}"]
            writer.writerow(row)
            predicted += 1
            explained += [(path, int(indices[0]))] if getattr(args, "explain", None) is not None else []
            if path.parent.name in classes:  # a folder of class sub-folders: score against them
                labelled += 1
                correct += path.parent.name == classes[int(indices[0])]
    if not predicted:
        output.unlink(missing_ok=True)
        raise DataNotFoundError(f"none of the {len(files)} files could be read as an image; nothing predicted")
    summary = f"predicted {predicted} file(s) into {output}; skipped {len(bad)} unreadable"
    if labelled == predicted:
        summary += f"; accuracy against the parent folder names: {correct / labelled:.4f} ({correct}/{labelled})"
    sys.stderr.write(summary + "\n")
    if explained:
        written = write_overlays(trained, explained, Path(args.explain), args.batch_size, workers)
        sys.stderr.write(f"wrote {written} Grad-CAM overlay(s) of the top class into {args.explain}\n")


def write_label_sets(
    trained: TrainedModel, files: list[Path], bad: list[str], args: argparse.Namespace, workers: int
) -> None:
    """A multi-label run's CSV: per file the predicted label set (each label whose probability is above the threshold
    tuned on the validation split, separated by spaces) and every label's probability, ``p_<label>``."""
    classes = trained.preprocessing.classes
    thresholds = trained.model.label_thresholds.detach().cpu()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    predicted = 0
    with open(output, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "labels", *(f"p_{name}" for name in classes)])
        for result in predict(trained, files, args.batch_size, workers, not args.no_progress):
            if isinstance(result, str):
                bad.append(result)
                sys.stderr.write(f"skipped {result}\n")
                continue
            path, probs = result
            chosen = " ".join(
                name for name, p, t in zip(classes, probs.tolist(), thresholds.tolist(), strict=True) if p > t
            )
            writer.writerow([str(path), chosen, *(f"{p:.6f}" for p in probs.tolist())])
            predicted += 1
    if not predicted:
        output.unlink(missing_ok=True)
        raise DataNotFoundError(f"none of the {len(files)} files could be read as an image; nothing predicted")
    sys.stderr.write(f"predicted the label sets of {predicted} file(s) into {output}; skipped {len(bad)} unreadable\n")
