"""The tools of ``lightning-cnn NAME``: one module each, whose ``main(argv)`` runs it, built on the library (inference,
experiments, training, data, models); only the command line (``lightning_cnn.__main__``) imports them."""

from __future__ import annotations

# ``lightning-cnn NAME ARGS`` runs ``MODULE.main(ARGS)``; modules are imported only when used, so a tool's optional
# dependencies (optuna, onnx) are loaded by that tool alone.
TOOLS: dict[str, tuple[str, str]] = {
    "predict-files": ("lightning_cnn.tools.predict_files", "classify image files with a trained run, as CSV"),
    "ensemble": ("lightning_cnn.tools.ensemble", "evaluate several trained runs together"),
    "calibrate": ("lightning_cnn.tools.calibrate", "fit a trained run's temperature on its validation split"),
    "export": ("lightning_cnn.tools.export", "export a trained run to ONNX or TorchScript"),
    "average": ("lightning_cnn.tools.average", "average the weights of a run's last K epoch checkpoints"),
    "kfold": ("lightning_cnn.tools.kfold", "k-fold cross-validation of a config"),
    "repeat": ("lightning_cnn.tools.repeat", "train a config once per seed: each run's test metrics and their spread"),
    "search": ("lightning_cnn.tools.search", "hyper-parameter search with Optuna"),
    "bag": ("lightning_cnn.tools.bag", "bagging: train K members on bootstrap resamples of the training set"),
    "boost": ("lightning_cnn.tools.boost", "boosting (SAMME): train K members, each reweighted by the last's mistakes"),
    "tune": ("lightning_cnn.tools.tune", "find the learning rate (and with --batch_size the batch size) of a config"),
    "preview": ("lightning_cnn.tools.preview", "write the first augmented training batch of a config as a PNG"),
    "models": ("lightning_cnn.tools.models", "parameters and FLOPs of every model or recipe"),
    "recipes": ("lightning_cnn.tools.recipes", "the recipes shipped with the package: model, data, measured accuracy"),
    "runs": ("lightning_cnn.tools.runs", "list the runs under a root: name, tags, model, data, accuracy"),
    "audit": ("lightning_cnn.tools.audit", "find duplicates, unreadable files and likely label errors in a dataset"),
}
