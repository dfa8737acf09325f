"""Message types: every request, reply and event, as a TypedDict of its content.

A registry maps each ``msg_type`` to its spec and kind; :func:`check_content`
tests a content dict against the spec (on send and on receive).
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict, Union, get_args, get_origin, get_type_hints

import numpy as np

from ..errors import InputError

# --------------------------------------------------------------------------- #
# Message types: name -> TypedDict describing the content.                    #
# A ``_Required`` base holds required keys; the public class adds optional    #
# ones (``total=False``). Unknown extra keys are allowed (forward compatible). #
# --------------------------------------------------------------------------- #


class PushDataContent(TypedDict, total=False):
    """``push_data`` request: add items to the pool, by URI, as array rows or as texts.

    ``features`` has shape ``(n_items, ...)``; give one of ``uris``, ``features`` and
    ``texts`` (raw strings, for a session with ``data.kind: text``).
    """

    uris: list[str]
    features: np.ndarray
    texts: list[str]
    wait: bool
    role: str  # "pool" (default) or "eval": an evaluation set with known labels
    labels: list[int | str]  # role="eval" only, one per item
    names: list[str]  # external ids of feature rows (default: content hashes)


class _PushDataReplyRequired(TypedDict):
    item_ids: list[int]
    n_items: int


class PushDataReplyContent(_PushDataReplyRequired, total=False):
    """``push_data_reply``: pool indices of the pushed items, in order."""

    n_new: int


class _QueryRequired(TypedDict):
    budget: int


class QueryContent(_QueryRequired, total=False):
    """``query`` request: select ``budget`` items to label (``strategy`` or auto)."""

    strategy: str


class _QueryReplyRequired(TypedDict):
    round: int
    item_ids: list[int]


class QueryReplyContent(_QueryReplyRequired, total=False):
    """``query_reply``: the items to label, best first."""

    uris: list[str]
    strategy: str


class _LabelRequired(TypedDict):
    item_id: int
    label: int | str | None


class LabelContent(_LabelRequired, total=False):
    """``label`` request: one human answer; ``label=None`` retracts (undo)."""

    labeler: str
    round: int
    strategy: str


class _LabelReplyRequired(TypedDict):
    item_id: int
    row_id: int


class LabelReplyContent(_LabelReplyRequired, total=False):
    """``label_reply``: the journal row that now holds the label."""


class _LabelManyRequired(TypedDict):
    item_ids: list[int]
    labels: list[int | str | None]


class LabelManyContent(_LabelManyRequired, total=False):
    """``label_many`` request: several answers, ``labels[i]`` for ``item_ids[i]``."""

    labeler: str
    round: int
    strategy: str


class _LabelManyReplyRequired(TypedDict):
    row_ids: list[int]


class LabelManyReplyContent(_LabelManyReplyRequired, total=False):
    """``label_many_reply``: one journal row per label, in order."""


class StatusContent(TypedDict, total=False):
    """``status`` request: no fields."""


class _StatusReplyRequired(TypedDict):
    state: str


class StatusReplyContent(_StatusReplyRequired, total=False):
    """``status_reply``: what the worker is doing and how far it got."""

    n_items: int
    n_labeled: int
    round: int
    strategies: list[str]
    eliminated: list[str]
    pid: int
    protocol_version: str


class StopContent(TypedDict, total=False):
    """``stop`` request: shut the worker down after the current step."""

    reason: str


class _StopReplyRequired(TypedDict):
    stopping: bool


class StopReplyContent(_StopReplyRequired, total=False):
    """``stop_reply``: the worker accepted the stop."""


class _ErrorRequired(TypedDict):
    ename: str
    evalue: str


class ErrorContent(_ErrorRequired, total=False):
    """``error``: a reply to a failed request, or an event; extra keys name the item."""

    reason: str
    traceback: list[str]


class _ProgressRequired(TypedDict):
    stage: str
    done: int


class ProgressContent(_ProgressRequired, total=False):
    """``progress`` event: ``done`` of ``total`` (``None`` if unknown) in ``stage``."""

    total: int | None
    unit: str
    message: str
    round: int


class _RoundResultRequired(TypedDict):
    round: int
    strategy: str
    n_labeled: int


class RoundResultContent(_RoundResultRequired, total=False):
    """``round_result`` event: accuracy of one strategy after one round."""

    top1: float | None
    top5: float | None
    forecast: float | None


class _EliminatedRequired(TypedDict):
    round: int
    strategy: str


class EliminatedContent(_EliminatedRequired, total=False):
    """``eliminated`` event: PSHEA removed a strategy."""

    predicted: float | None
    reason: str


class _QuarantinedRequired(TypedDict):
    item_id: int
    reason: str


class QuarantinedContent(_QuarantinedRequired, total=False):
    """``quarantined`` event: an item could not be fetched or decoded."""

    uri: str


class HelloContent(TypedDict, total=False):
    """``hello`` request: the first message of a client; no fields."""


class _HelloReplyRequired(TypedDict):
    events: str
    protocol_version: str


class HelloReplyContent(_HelloReplyRequired, total=False):
    """``hello_reply``: where events are published, and who answers."""

    pid: int
    session_dir: str
    name: str
    classes: list[str]
    data_kind: str  # the config's data.kind: how the client reads strings it pushes
    config: dict  # the config the worker runs, as Config.to_dict() gives it


class FitContent(TypedDict, total=False):
    """``fit`` request: train the last layer now, evaluate, and record the round."""


class _PushDoneRequired(TypedDict):
    n_items: int


class PushDoneContent(_PushDoneRequired, total=False):
    """``push_done`` event: a push finished (cache hits, embedded, quarantined)."""

    cache_hits: int
    embedded: int
    seconds: float


class _ItemDataRequired(TypedDict):
    item_ids: list[int]


class ItemDataContent(_ItemDataRequired, total=False):
    """``item_data`` request: the content of items, for the labeling UI."""

    max_side: int


class _ItemDataReplyRequired(TypedDict):
    items: list[dict]


class ItemDataReplyContent(_ItemDataReplyRequired, total=False):
    """``item_data_reply``: per item ``kind`` (image|text|array|error), ``data`` PNG bytes
    or ``text``, ``uri``."""


MessageKind = Literal["request", "reply", "event"]

_MESSAGE_TYPES: dict[str, type] = {}
_MESSAGE_KINDS: dict[str, str] = {}
#: Read-only view: message type name -> TypedDict of its content.
MESSAGE_TYPES: Mapping[str, type] = types.MappingProxyType(_MESSAGE_TYPES)
#: Read-only view: message type name -> ``"request"``, ``"reply"`` or ``"event"``.
MESSAGE_KINDS: Mapping[str, str] = types.MappingProxyType(_MESSAGE_KINDS)
_HINTS: dict[str, dict[str, Any]] = {}


def register_message_type(
    name: str, content: type, *, kind: MessageKind, clobber: bool = False
) -> None:
    """Declare a message type so sessions accept it.

    Parameters
    ----------
    name : str
        The ``msg_type``; by convention a request ``x`` is answered by ``x_reply``.
    content : TypedDict class
        Describes the content dict: required keys must be present and each value
        must match its annotation (shallowly for containers). Extra keys pass.
    kind : {"request", "reply", "event"}
        Where it travels: client to worker, worker to client, or published.
    clobber : bool, default False
        Registering a different spec under a taken name raises unless True.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise InputError(
            f"message type name must be lower_snake_case letters/digits; got {name!r}."
        )
    if kind not in ("request", "reply", "event"):
        raise InputError(f"kind must be 'request', 'reply' or 'event'; got {kind!r}.")
    if not (isinstance(content, type) and issubclass(content, dict)):
        raise InputError(
            f"content for message type {name!r} must be a TypedDict class; got {content!r}."
        )
    old = _MESSAGE_TYPES.get(name)
    if old is not None and (old is not content or _MESSAGE_KINDS[name] != kind) and not clobber:
        raise InputError(
            f"message type {name!r} is already registered with {old.__name__} "
            f"({_MESSAGE_KINDS[name]}); pass clobber=True to replace it."
        )
    _HINTS[name] = get_type_hints(content)
    _MESSAGE_TYPES[name] = content
    _MESSAGE_KINDS[name] = kind


for _name, _spec, _kind in (
    ("push_data", PushDataContent, "request"),
    ("push_data_reply", PushDataReplyContent, "reply"),
    ("query", QueryContent, "request"),
    ("query_reply", QueryReplyContent, "reply"),
    ("label", LabelContent, "request"),
    ("label_reply", LabelReplyContent, "reply"),
    ("label_many", LabelManyContent, "request"),
    ("label_many_reply", LabelManyReplyContent, "reply"),
    ("status", StatusContent, "request"),
    ("status_reply", StatusReplyContent, "reply"),
    ("stop", StopContent, "request"),
    ("stop_reply", StopReplyContent, "reply"),
    ("error", ErrorContent, "reply"),
    ("hello", HelloContent, "request"),
    ("hello_reply", HelloReplyContent, "reply"),
    ("fit", FitContent, "request"),
    ("fit_reply", RoundResultContent, "reply"),
    ("push_done", PushDoneContent, "event"),
    ("item_data", ItemDataContent, "request"),
    ("item_data_reply", ItemDataReplyContent, "reply"),
    ("worker_error", ErrorContent, "event"),
    ("progress", ProgressContent, "event"),
    ("round_result", RoundResultContent, "event"),
    ("eliminated", EliminatedContent, "event"),
    ("quarantined", QuarantinedContent, "event"),
):
    register_message_type(_name, _spec, kind=_kind)  # type: ignore[arg-type]
del _name, _spec, _kind


# --------------------------------------------------------------------------- #
# Content checks against the TypedDict specs                                  #
# --------------------------------------------------------------------------- #


def _matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` fits annotation ``tp`` (numpy scalars count as Python ones)."""
    if tp is Any:
        return True
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return any(_matches(value, arg) for arg in get_args(tp))
    if origin is Literal:
        return value in get_args(tp)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, (bool, np.bool_))
    if tp is int:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, bool
        )
    if origin in (list, Sequence) or tp is list:
        if not isinstance(value, (list, tuple)):
            return False
        (item_tp,) = get_args(tp) or (Any,)
        return all(_matches(v, item_tp) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def check_content(msg_type: str, content: Mapping[str, Any]) -> str | None:
    """Return what is wrong with ``content`` for ``msg_type``, or ``None``."""
    spec = _MESSAGE_TYPES[msg_type]
    missing = sorted(k for k in spec.__required_keys__ if k not in content)  # type: ignore[attr-defined]
    if missing:
        return f"{msg_type} content is missing required field(s) {missing}"
    for key, tp in _HINTS[msg_type].items():
        if key in content and not _matches(content[key], tp):
            got = content[key]
            shown = repr(got) if len(repr(got)) < 60 else f"a {type(got).__name__}"
            return f"{msg_type} field {key!r} must be {_type_name(tp)}; got {shown}"
    return None


