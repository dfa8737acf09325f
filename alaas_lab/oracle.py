"""A simulated labeler who knows every answer: drives a worker's rounds without a person.

What the tutorials, tests and benchmarks use in place of someone at the labeling
widget: :func:`label_round` asks the worker for a round's items and answers them from
a ``truth`` mapping; :func:`wait_for_round` waits until the worker has trained on a
round's labels and scored it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from .errors import InputError

__all__ = ["label_round", "wait_for_round"]


class _HasStatus(Protocol):
    def status(self) -> dict[str, Any]: ...


def wait_for_round(lab: _HasStatus, round: int, *, timeout: float = 600.0,
                   poll: float = 0.05) -> list[dict[str, Any]]:
    """Block until the worker has scored ``round`` (its last label fitted and evaluated).

    Parameters
    ----------
    lab : Lab or Client
        Anything whose ``status()`` returns the worker's status with its ``rounds``.
    round : int
        A round number, as in ``Selection.round`` or an item's ``round``.
    timeout : float, default 600
        Seconds to wait.
    poll : float, default 0.05
        Seconds between two ``status()`` requests.

    Returns
    -------
    rows : list of dict
        The round's rows of ``status()["rounds"]``: one (single strategy) or one per
        racing strategy (PSHEA), each with ``round``, ``strategy``, ``n_labeled``,
        ``top1``, ``top5``.

    Raises
    ------
    TimeoutError
        The round was not scored in ``timeout`` seconds; the message gives the rounds
        that were.
    """
    if isinstance(round, bool) or not isinstance(round, int) or round < 0:
        raise InputError(f"round must be a round number (an int >= 0); got {round!r}.")
    deadline = time.monotonic() + float(timeout)
    while True:
        scored = lab.status()["rounds"]
        rows = [r for r in scored if r["round"] == round]
        if rows:
            return rows
        if time.monotonic() > deadline:
            done = sorted({r["round"] for r in scored})
            raise TimeoutError(f"round {round} was not scored within {timeout:g} s (scored: "
                               f"{done or 'none'}); is the worker busy or are labels missing?")
        time.sleep(poll)


def label_round(lab: Any, truth: Mapping[int, Any], budget: int, *, labeler: str = "oracle",
                timeout: float = 600.0) -> tuple[Any, list[dict[str, Any]]]:
    """Ask for ``budget`` items, answer each from ``truth``, wait until the round is scored.

    Parameters
    ----------
    lab : Lab
        A started session (``lab.client`` sends the requests).
    truth : mapping
        ``{item_id: label}`` for every pool item the worker may select.
    budget : int
        Items to ask for (under PSHEA: per surviving strategy).
    labeler : str, default "oracle"
        The name the journal records for these labels.
    timeout : float, default 600
        Seconds to wait for the round to be scored.

    Returns
    -------
    selection : Selection
        What the worker asked (``round``, ``strategy``, ``item_ids``, ``uris``).
    rows : list of dict
        The round's rows of ``status()["rounds"]`` (:func:`wait_for_round`).
    """
    selection = lab.client.query(budget)
    missing = [i for i in selection.item_ids if i not in truth]
    if missing:
        raise InputError(f"truth has no label for item(s) {missing[:5]} of round "
                         f"{selection.round}; give {{item_id: label}} for every pushed pool item.")
    lab.client.label_many(selection.item_ids, [truth[i] for i in selection.item_ids],
                          labeler=labeler)
    return selection, wait_for_round(lab, selection.round, timeout=timeout)
