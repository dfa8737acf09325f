"""One exception family for everything alaas_lab reports to its users.

Every message says what was wrong, which argument, key or item, what was
received, and what to do about it.
"""

from __future__ import annotations


class AlaasError(Exception):
    """Base class of every error raised by alaas_lab."""


class ConfigError(AlaasError, ValueError):
    """A configuration key is unknown, missing or has a bad value."""


class InputError(AlaasError, ValueError):
    """An argument (array, budget, name, ...) is not what the function accepts."""


class DataError(AlaasError):
    """A data item could not be found, read or decoded."""


class ModelError(AlaasError):
    """A model or its weights could not be loaded or used."""
