"""One exception family for everything alaas_lab reports to its users.

Every message says what was wrong, which argument, key or item, what was
received, and what to do about it. Every error also carries a stable
machine-readable :attr:`AlaasError.reason` (one of :data:`REASONS`): an error
reply on the wire carries it too, and code branches on it, never on the text.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

__all__ = [
    "REASONS",
    "AlaasError",
    "BudgetError",
    "CacheError",
    "ConfigError",
    "DataError",
    "ExecutorError",
    "InputError",
    "JournalError",
    "ModelError",
    "PipelineError",
    "ProtocolError",
    "RemoteError",
    "StrategyError",
    "WorkerStartError",
    "WorkerUnavailable",
]

#: Every ``reason`` code, with what it means. Codes are stable: new ones may be
#: added, none is renamed or reused.
REASONS = MappingProxyType({
    # what the session cannot do any more
    "budget_spent": "the label budget (budget.total) is used up",
    "over_budget": "a query asks for more labels than the budget has left",
    "pool_exhausted": "fewer pool items are embedded, unlabeled and not queued than asked for",
    "session_finished": "PSHEA has stopped: target reached, budget or rounds spent",
    "no_labels": "the model needs labeled items first",
    "no_eval_set": "evaluation needs an evaluation set or a holdout",
    # what a request named
    "unknown_item": "the item id is not in the pool",
    "quarantined_item": "the item could not be fetched or decoded",
    "not_queued": "a label for an item that no query returned",
    "bad_label": "a label that is not one of the configured classes",
    "unknown_strategy": "a strategy name the registry does not know",
    "not_ready": "the request comes too early (e.g. a round not selected or labeled yet)",
    "bad_input": "an argument of the wrong type, shape or value",
    "not_found": "a URI, file or object that does not exist",
    # set-up and machinery
    "bad_config": "a config key is unknown, missing or has a bad value",
    "bad_data": "an item could not be read or decoded",
    "model": "a model or its weights could not be loaded or used",
    "journal": "the session journal cannot be opened or written",
    "cache": "the embedding cache cannot be opened or written",
    "pipeline": "a pipeline stage failed",
    "executor": "the Dask cluster failed",
    "worker_start": "the worker process did not come up",
    "worker_unavailable": "no reply from the worker in time",
    "internal": "a bug: the worker raised something unexpected (see the traceback)",
    "error": "an error without a more specific code",
    # the wire (ProtocolError)
    "frames": "a message with too few or malformed frames",
    "signature": "a message without the session key's signature, or with a wrong one",
    "header": "a message header that cannot be read",
    "version": "a peer speaking another major protocol version",
    "replay": "a message id seen before",
    "msg_type": "a message type the receiver does not accept",
    "content": "content that does not match the message type's schema",
    "buffers": "buffer frames that do not match the content's placeholders",
    "encode": "content this side could not serialize",
    "protocol": "another protocol failure",
})


class AlaasError(Exception):
    """Base class of every error raised by alaas_lab.

    Parameters
    ----------
    message : str
    reason : str, optional
        A code from :data:`REASONS`; default: the class's own.
    """

    default_reason = "error"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason
        if self.reason not in REASONS:  # a typo in our code must not reach the wire
            raise ValueError(f"unknown reason code {self.reason!r}")


class ConfigError(AlaasError, ValueError):
    """A configuration key is unknown, missing or has a bad value."""

    default_reason = "bad_config"


class InputError(AlaasError, ValueError):
    """An argument (array, budget, name, ...) is not what the function accepts."""

    default_reason = "bad_input"


class BudgetError(InputError):
    """A query would spend more labels than the configured budget allows."""

    default_reason = "over_budget"


class StrategyError(InputError):
    """A registered strategy returned something other than k distinct unlabeled indices."""

    default_reason = "internal"


class DataError(AlaasError):
    """A data item could not be found, read or decoded."""

    default_reason = "bad_data"


class ModelError(AlaasError):
    """A model or its weights could not be loaded or used."""

    default_reason = "model"


class JournalError(AlaasError):
    """The session journal cannot be opened or written, or names an item it does not hold."""

    default_reason = "journal"


class CacheError(AlaasError):
    """The embedding cache cannot be opened, locked or written."""

    default_reason = "cache"


class PipelineError(AlaasError):
    """A stage function raised: the pipeline stopped."""

    default_reason = "pipeline"


class ExecutorError(AlaasError):
    """The Dask cluster cannot be reached, has no workers, or lost a batch for good."""

    default_reason = "executor"


class WorkerStartError(AlaasError):
    """The worker process exited or did not come up; the message holds its log's tail."""

    default_reason = "worker_start"


class WorkerUnavailable(AlaasError):
    """No reply from the worker in time: it is busy, gone, or the address is wrong."""

    default_reason = "worker_unavailable"


class RemoteError(AlaasError):
    """The worker answered a request with an error.

    Attributes
    ----------
    ename : str
        The class name of the worker's exception.
    evalue : str
        Its message.
    reason : str
        Its code (:data:`REASONS`); ``"error"`` from a worker that sent none.
    content : dict
        The whole error reply (fields naming the item, the traceback of a bug).
    """

    def __init__(self, ename: str, evalue: str, content: dict[str, Any]) -> None:
        reason = content.get("reason")
        super().__init__(f"{ename}: {evalue}",
                         reason=reason if reason in REASONS else "error")
        self.ename, self.evalue, self.content = ename, evalue, content


class ProtocolError(AlaasError):
    """A wire message is malformed, unsigned, replayed or of an unknown type or version.

    Attributes
    ----------
    reason : str
        ``"frames"``, ``"signature"``, ``"header"``, ``"version"``, ``"replay"``,
        ``"msg_type"``, ``"content"``, ``"buffers"`` or ``"encode"`` (the local side
        could not serialize what it was given).
    header : dict or None
        The parsed header of the offending message when it could be read, so that an
        error reply can name its parent; ``None`` for garbage frames.
    identities : tuple of bytes
        Routing frames that preceded the message (ROUTER identities or a PUB topic).
    """

    default_reason = "protocol"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "protocol",
        header: dict | None = None,
        identities: tuple[bytes, ...] = (),
    ) -> None:
        super().__init__(message, reason=reason)
        self.header = header
        self.identities = tuple(identities)
