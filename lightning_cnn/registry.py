"""Classes by short name, filled where each class is defined: ``@MODELS.register`` above a model makes it known to
the CLI, the error messages, the model table and the registry-wide tests, so a new architecture is one file."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T", bound=type)


class Registry(dict[str, T], Generic[T]):
    """A name → class mapping of one kind (models, data modules, augmentations)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, cls: T) -> T:
        """Class decorator: add ``cls`` under its own name; a second class of the same name is a bug."""
        if cls.__name__ in self and self[cls.__name__] is not cls:
            raise ValueError(f"two {self.kind} are named {cls.__name__}: {self[cls.__name__]} and {cls}")
        self[cls.__name__] = cls
        return cls
