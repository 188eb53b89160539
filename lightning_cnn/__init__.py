"""lightning_cnn: train, compare and ship CNN image classifiers with PyTorch Lightning."""

__version__ = "0.1.0"
