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


class ProtocolError(AlaasError):
    """A wire message is malformed, unsigned, replayed or of an unknown type or version.

    Attributes
    ----------
    reason : str
        Short machine-readable code: ``"frames"``, ``"signature"``, ``"header"``,
        ``"version"``, ``"replay"``, ``"msg_type"``, ``"content"``, ``"buffers"`` or
        ``"encode"`` (the local side could not serialize what it was given).
    header : dict or None
        The parsed header of the offending message when it could be read, so that an
        error reply can name its parent; ``None`` for garbage frames.
    identities : tuple of bytes
        Routing frames that preceded the message (ROUTER identities or a PUB topic).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "protocol",
        header: dict | None = None,
        identities: tuple[bytes, ...] = (),
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.header = header
        self.identities = tuple(identities)


class JournalError(AlaasError):
    """The session journal cannot be opened or written, or names an item it does not hold."""


class CacheError(AlaasError):
    """The embedding cache cannot be opened, locked or written."""
