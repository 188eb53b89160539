"""The models the registry-wide tests build: every registered class with its defaults, and a few more timm
architectures through ``TimmClassifier`` (an EfficientNet, and a ResNet whose blocks start as the identity
switched off: zero-initialized last norms would leave the first convs without gradients at step one)."""

from __future__ import annotations

from typing import Any

from lightning_cnn.models import MODELS, ImageClassifier

TIMM_EXTRA = {"test_efficientnet": {}, "test_resnet": {"model_args": {"zero_init_last": False}}}

# test id → (registered name, constructor options)
MODEL_CASES: dict[str, tuple[str, dict[str, Any]]] = {name: (name, {}) for name in sorted(MODELS)} | {
    f"TimmClassifier-{name}": ("TimmClassifier", {"model_name": name, **options})
    for name, options in TIMM_EXTRA.items()
}


def build(case: str, **kwargs: Any) -> ImageClassifier:
    """The model of test case ``case``, with ``kwargs`` (num_classes, input_shape) added to its options."""
    name, options = MODEL_CASES[case]
    return MODELS[name](**options, **kwargs)
