"""Errors a user can act on: the CLI prints their message as one line and exits non-zero."""


class LightningCnnError(Exception):
    """Base class for problems in the user's input (config, files, data), not bugs in our code."""


class DataNotFoundError(LightningCnnError):
    """The dataset files are missing and could not be downloaded."""


class CorruptDataError(LightningCnnError):
    """A dataset file exists but cannot be parsed (truncated, altered, wrong format)."""


class ConfigError(LightningCnnError):
    """A configuration value is invalid in a way the argument parser cannot see."""


class DivergedError(LightningCnnError):
    """The training loss became NaN or infinite; the run stops and keeps its last good checkpoint."""
