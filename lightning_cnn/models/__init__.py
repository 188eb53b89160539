"""Every architecture, registered once: the CLI, the error messages and the tests read ``MODELS``."""

from lightning_cnn.classifier import ImageClassifier
from lightning_cnn.models.lenet import LeNet5
from lightning_cnn.models.simple_cnn import SimpleCNN

MODELS: dict[str, type[ImageClassifier]] = {cls.__name__: cls for cls in (LeNet5, SimpleCNN)}

__all__ = ["MODELS", "ImageClassifier", "LeNet5", "SimpleCNN"]
