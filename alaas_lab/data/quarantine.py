"""Quarantine: the record of an item the pipeline set aside, so that the rest can go on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import AlaasError, InputError

__all__ = ["Quarantine", "STAGES", "quarantine"]

Stage = Literal["fetch", "decode"]
STAGES: tuple[str, ...] = ("fetch", "decode")


@dataclass(frozen=True, slots=True)
class Quarantine:
    """One item that could not be used.

    Attributes
    ----------
    uri : str
        The item.
    stage : {"fetch", "decode"}
        Where it failed.
    reason : str
        What went wrong and what to do, in words fit for a user.
    """

    uri: str
    stage: Stage
    reason: str

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise InputError(f"Quarantine.stage must be one of {STAGES}; got {self.stage!r}.")

    def as_event(self) -> dict[str, Any]:
        """A JSON-ready dict, ``{"uri", "stage", "reason"}``, for the worker's events."""
        return {"uri": self.uri, "stage": self.stage, "reason": self.reason}


def quarantine(uri: str, stage: Stage, failure: BaseException | str) -> Quarantine:
    """Turn any failure of one item into a :class:`Quarantine` record.

    Parameters
    ----------
    uri : str
        The item.
    stage : {"fetch", "decode"}
        Where it failed.
    failure : BaseException or str
        An exception (our own errors keep their message; others are named by type) or a
        ready reason such as :attr:`FetchResult.error`.

    Returns
    -------
    record : Quarantine
    """
    if isinstance(failure, str):
        reason = failure
    elif isinstance(failure, AlaasError):
        reason = str(failure)
    else:
        text = str(failure).strip()
        reason = f"{uri}: unexpected {type(failure).__name__}" + (f": {text}" if text else "")
    return Quarantine(str(uri), stage, reason or f"{uri}: failed at {stage} (no reason given)")
