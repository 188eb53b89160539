"""Every architecture: each family's module registers its classes in ``MODELS`` with ``@MODELS.register``.

A model of your own needs no entry here: subclass ``ImageClassifier`` in your own file and give its class path
(``--model my_package.MyNet``); decorate it with ``@MODELS.register`` to use its short name as well.
"""

from lightning_cnn.models.alexnet import AlexNet
from lightning_cnn.models.base import MODELS, ImageClassifier
from lightning_cnn.models.cifar_resnet import CIFARResNet, ResNet20, ResNet32, ResNet44, ResNet56
from lightning_cnn.models.convnet import ConvNet
from lightning_cnn.models.fast_net import FastCIFARNet
from lightning_cnn.models.lenet import LeNet5
from lightning_cnn.models.mlp import MLP
from lightning_cnn.models.resnet import ResNet18
from lightning_cnn.models.simple_cnn import SimpleCNN
from lightning_cnn.models.timm_classifier import TimmClassifier

__all__ = [
    "MODELS",
    "AlexNet",
    "CIFARResNet",
    "ConvNet",
    "FastCIFARNet",
    "ImageClassifier",
    "LeNet5",
    "MLP",
    "ResNet18",
    "ResNet20",
    "ResNet32",
    "ResNet44",
    "ResNet56",
    "SimpleCNN",
    "TimmClassifier",
]
