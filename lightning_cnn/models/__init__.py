"""Every architecture, registered once: the CLI, the error messages and the tests read ``MODELS``."""

from lightning_cnn.classifier import ImageClassifier
from lightning_cnn.models.alexnet import AlexNet
from lightning_cnn.models.convnet import ConvNet
from lightning_cnn.models.lenet import LeNet5
from lightning_cnn.models.mlp import MLP
from lightning_cnn.models.resnet import ResNet18
from lightning_cnn.models.simple_cnn import SimpleCNN

MODELS: dict[str, type[ImageClassifier]] = {
    cls.__name__: cls for cls in (MLP, SimpleCNN, ConvNet, LeNet5, AlexNet, ResNet18)
}

__all__ = ["MODELS", "AlexNet", "ConvNet", "ImageClassifier", "LeNet5", "MLP", "ResNet18", "SimpleCNN"]
