"""Message types: every request, reply and event, as a TypedDict of its content.

A registry maps each ``msg_type`` to its spec and kind; :func:`check_content`
tests a content dict against the spec (on send and on receive).
"""

from __future__ import annotations

import datetime as _dt
import functools
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


class StageReport(TypedDict):
    """One pipeline stage's counters (``progress`` events, push replies)."""

    name: str
    workers: int
    items_in: int
    items_out: int
    calls: int
    busy_s: float
    queue_depth: int
    queue_capacity: int
    items_per_s: float


class _PipelineReportRequired(TypedDict):
    wall_s: float
    stages: list[StageReport]


class PipelineReport(_PipelineReportRequired, total=False):
    """Per-stage statistics of one push; ``executor`` describes a Dask cluster."""

    executor: dict


class PushDataReplyContent(_PushDataReplyRequired, total=False):
    """``push_data_reply``: pool indices of the pushed items, in order.

    With ``wait=False`` the reply comes at once with ``queued: True`` and empty
    ``item_ids``; the counts arrive in the ``push_done`` event.
    """

    n_new: int  # items the pool did not hold before
    cache_hits: int
    embedded: int
    quarantined: list[int]  # item ids of this push set aside (see status()["quarantine"])
    seconds: float
    pipeline: PipelineReport | dict  # {} when nothing had to be embedded
    queued: bool


class _QueryRequired(TypedDict):
    budget: int


class QueryContent(_QueryRequired, total=False):
    """``query`` request: select ``budget`` items to label (``strategy`` or auto)."""

    strategy: str


class _QueryReplyRequired(TypedDict):
    round: int
    item_ids: list[int]


class QueryReplyContent(_QueryReplyRequired, total=False):
    """``query_reply``: the items to label, best first.

    PSHEA (``strategy: auto``) adds each candidate's picks (``selections``), whether
    the round was resumed after a restart, the surviving candidates, and ``result``
    when every pick was labeled already (the round's ``fit_reply``).
    """

    uris: list[str]
    strategy: str
    selections: dict  # {strategy: [item_id, ...]}
    resumed: bool
    survivors: list[str]
    result: dict


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


class RoundRecord(TypedDict):
    """One strategy's result in one round, as the journal holds it."""

    round: int
    strategy: str
    n_labeled: int
    top1: float | None
    top5: float | None
    time: float  # seconds since the epoch
    extra: dict  # n_eval, fit_s; PSHEA: predicted, forecast, forecast_std, seed


class AutoStatus(TypedDict):
    """PSHEA's run so far (``status_reply["auto"]``)."""

    round: int
    candidates: list[str]
    survivors: list[str]
    eliminated: dict  # {strategy: reason}
    labels_unique: int
    labels_sum: int
    best_accuracy: float | None
    stopped: bool
    stop_reason: str | None
    winner: str | None
    forecasts: dict  # {strategy: predicted next top-1 or None}


class StatusReplyContent(_StatusReplyRequired, total=False):
    """``status_reply``: what the worker is doing and how far it got.

    ``state`` is the running job (``idle``, ``push``, ``query``, ``fit``);
    ``budget_left`` is None without ``budget.total``; ``quarantine`` maps item ids
    (as strings: JSON keys) to why they were set aside.
    """

    n_items: int
    n_embedded: int
    n_quarantined: int
    n_labeled: int  # pool labels, the evaluation set not counted
    n_eval: int
    n_pending: int  # queued for labeling, not answered yet
    round: int
    strategies: list[str]
    eliminated: list[str]
    budget_left: int | None
    classes: list[str]
    rounds: list[RoundRecord]
    auto: AutoStatus
    pid: int
    protocol_version: str
    quarantine: dict
    jobs_queued: int
    suspects: dict  # SuspectsReplyContent without items: open, confirmed, corrected, round...


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
    reason: str  # a code of alaas_lab.errors.REASONS: branch on it, never on evalue


class ErrorContent(_ErrorRequired, total=False):
    """``error``: a reply to a failed request, or an event; extra keys name the item."""

    traceback: list[str]
    job: str  # worker_error events: the background job that failed


class _ProgressRequired(TypedDict):
    stage: str
    done: int


class ProgressContent(_ProgressRequired, total=False):
    """``progress`` event: ``done`` of ``total`` (``None`` if unknown) in ``stage``.

    ``stage`` is ``pipeline`` (a push: with per-stage ``stages`` and ``wall_s``) or
    ``pshea`` (rounds of the automatic mode, with a ``message``).
    """

    total: int | None
    unit: str
    message: str
    round: int
    stages: list[StageReport]
    wall_s: float
    executor: dict


class _RoundResultRequired(TypedDict):
    round: int
    strategy: str
    n_labeled: int


class RoundResultContent(_RoundResultRequired, total=False):
    """``round_result`` event: accuracy of one strategy after one round.

    PSHEA adds the accuracy it had predicted for this round, its forecast for the
    next, whether the strategy was eliminated now, and ``replay`` for a round
    published again after a restart.
    """

    top1: float | None
    top5: float | None
    forecast: float | None
    predicted: float | None
    eliminated: bool
    replay: bool
    n_eval: int
    fit_s: float


class FitReplyContent(_RoundResultRequired, total=False):
    """``fit_reply``: the round just recorded (PSHEA: the best candidate's accuracy).

    PSHEA adds ``best``, each candidate's ``results``, the strategies ``eliminated``
    now, the ``survivors``, and whether (why, with which ``winner``) it stopped.
    """

    top1: float | None
    top5: float | None
    n_eval: int
    fit_s: float
    best: str
    eliminated: list[str]
    results: dict  # {strategy: {top1, top5, n_labeled, n_eval, fit_s}}
    survivors: list[str]
    stopped: bool
    stop_reason: str | None
    winner: str | None


class _EliminatedRequired(TypedDict):
    round: int
    strategy: str


class EliminatedContent(_EliminatedRequired, total=False):
    """``eliminated`` event: PSHEA removed a strategy."""

    predicted: float | None
    actual: float | None
    reason: str


class _QuarantinedRequired(TypedDict):
    item_id: int
    reason: str


class QuarantinedContent(_QuarantinedRequired, total=False):
    """``quarantined`` event: an item could not be fetched or decoded."""

    uri: str
    stage: str  # "fetch" or "decode"


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
    resumed: bool  # the worker found a session in its journal when it started
    features: list[str]  # requests beyond protocol 1.0 it serves: "leases", "leave_out"
    lookahead: bool  # rounds.mode is async: selections run ahead of the labelers


class FitContent(TypedDict, total=False):
    """``fit`` request: train the last layer now, evaluate, and record the round."""


class _PushDoneRequired(TypedDict):
    n_items: int


class PushDoneContent(_PushDoneRequired, total=False):
    """``push_done`` event: a push finished (cache hits, embedded, quarantined)."""

    cache_hits: int
    embedded: int
    seconds: float
    pipeline: PipelineReport | dict
    quarantined: list[int]


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


def iso_time(t: float) -> str:
    """A time in content: ISO 8601 in UTC, to the millisecond (such strings sort as times)."""
    return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).isoformat(timespec="milliseconds")


#: Sections of a ``history`` reply, in this order.
HISTORY_SECTIONS = ("labels", "rounds", "forecasts", "eliminations", "quarantine", "pending",
                    "selections")


class HistoryContent(TypedDict, total=False):
    """``history`` request: what the session's journal holds, since a cursor.

    ``since`` is a reply's ``cursor`` (or an int: label rows after that journal row,
    every other section whole); 0, the default, asks for everything. ``include``
    names sections of :data:`HISTORY_SECTIONS` (default: all). ``limit`` caps the
    label rows (then ``more`` is true: ask again with the cursor). Labels are every
    journal row (changed answers, and retractions with ``label`` None) unless
    ``current`` (each item's standing label only); ``include_eval`` adds the
    evaluation set's, ``labeler`` keeps one labeler's. ``round`` limits ``selections``.
    """

    since: int | str
    include: list[str]
    limit: int
    current: bool
    include_eval: bool
    labeler: str
    round: int


class LabelRow(TypedDict):
    """A ``history`` label row (its keys are the columns of ``Lab.labels()``).

    ``round`` and ``strategy`` name the selection that asked for the item;
    ``model_round`` and ``model_n_labeled`` the head that chose it (the last round
    the journal recorded before that selection, and the labels it was fitted on),
    None when no head did (random or embedding-only picks, labels nobody asked for).
    """

    item_id: int
    uri: str
    label: int | str | None
    labeler: str | None
    time: str  # ISO 8601, UTC
    round: int | None
    strategy: str | None
    row_id: int
    model_round: int | None
    model_n_labeled: int | None


class _HistoryReplyRequired(TypedDict):
    cursor: str
    more: bool


class HistoryReplyContent(_HistoryReplyRequired, total=False):
    """``history_reply``: the sections asked for, and the ``cursor`` to ask again with.

    ``labels`` (:class:`LabelRow`, oldest first) holds only rows after the cursor.
    The other sections are the journal's whole state, sent only when it changed
    since the cursor (a section that is left out did not): ``rounds`` (``round``,
    ``strategy``, ``n_labeled``, ``top1``, ``top5``, ``time``), ``forecasts``
    (``round`` predicted, ``strategy``, ``predicted``), ``eliminations`` (``round``,
    ``strategy``, ``predicted``: the forecast that removed it, ``reason``),
    ``quarantine`` (``item_id``, ``uri``, ``stage``, ``reason``), ``pending``
    (selected, not labeled: ``item_id``, ``round``, ``strategy``) and ``selections``
    (``item_id``, ``round``, ``strategy``); an item several strategies picked comes
    once, its ``strategy`` e.g. ``"margin, entropy"``.
    """

    labels: list[dict]
    rounds: list[dict]
    forecasts: list[dict]
    eliminations: list[dict]
    quarantine: list[dict]
    pending: list[dict]
    selections: list[dict]


class NextItemsContent(TypedDict, total=False):
    """``next_items`` request: lease up to ``n`` queued items to ``labeler``.

    Leased items are kept from other labelers for ``rounds.lease_s`` seconds (or
    until answered); the labeler's own unexpired leases come back first.
    """

    n: int
    labeler: str


class _NextItemsReplyRequired(TypedDict):
    item_ids: list[int]
    waiting: bool  # no item now, but the session is not done: ask again


class NextItemsReplyContent(_NextItemsReplyRequired, total=False):
    """``next_items_reply``: the leased items with the round and strategy that asked."""

    uris: list[str]
    rounds: list[int]
    strategies: list[str]


class _LeaveOutRequired(TypedDict):
    item_id: int


class LeaveOutContent(_LeaveOutRequired, total=False):
    """``leave_out`` request: a queued item skipped twice leaves its round (``undo``: back)."""

    labeler: str
    undo: bool


class LeaveOutReplyContent(_LeaveOutRequired, total=False):
    """``leave_out_reply``: done; the item is never selected again (unless undone)."""



class PoolMapContent(TypedDict, total=False):
    """``pool_map`` request: the pool's 2-D map.

    ``since_version``: the version the client holds; when it is still the newest,
    the reply leaves out ``item_ids`` and ``xy`` (only the per-point fields, which
    change with every round). ``wait``: reply once a running projection is done
    (up to ``timeout`` s).
    """

    since_version: int
    wait: bool
    timeout: float


class _PoolMapReplyRequired(TypedDict):
    version: int  # 0: no map yet
    n: int
    classes: list[str]
    states: list[str]


class PoolMapReplyContent(_PoolMapReplyRequired, total=False):
    """``pool_map_reply``: coordinates and per-point fields, as binary arrays.

    ``item_ids`` (n,) int32 and ``xy`` (n, 2) float32; per point (same order):
    ``predicted`` int16 (class index, -1 before the first fit), ``uncertainty``
    float32 (``1 - max p``, NaN before the first fit), ``point_state`` uint8 (index
    into ``states``), ``strategy`` uint8 (index into ``strategies``; 0 is ""),
    ``label`` int16 (the human label's class index, -1) and ``suspect`` uint8.
    """

    method: str  # "tsne", "pca" or "none"
    seconds: float
    computing: bool
    error: str
    item_ids: np.ndarray
    xy: np.ndarray
    predicted: np.ndarray
    uncertainty: np.ndarray
    point_state: np.ndarray
    strategy: np.ndarray
    strategies: list[str]
    label: np.ndarray
    suspect: np.ndarray


class _PoolMapReadyRequired(TypedDict):
    version: int
    n: int


class PoolMapReadyContent(_PoolMapReadyRequired, total=False):
    """``pool_map_ready`` event: a new map was computed (ask with ``pool_map``)."""

    method: str
    seconds: float


class _QueueItemsRequired(TypedDict):
    item_ids: list[int] | np.ndarray


class QueueItemsContent(_QueueItemsRequired, total=False):
    """``queue_items`` request: items chosen on the map, labeled next (``labeler``: leased
    to that labeler at once)."""

    labeler: str


class _QueueItemsReplyRequired(TypedDict):
    item_ids: np.ndarray
    n_queued: int


class QueueItemsReplyContent(_QueueItemsReplyRequired, total=False):
    """``queue_items_reply``: the items queued (int64 array), and ``skipped`` counts by
    reason (``labeled``, ``evaluation``, ``quarantined``, ``not_embedded``,
    ``left_out``, ``held``)."""

    skipped: dict


class SuspectsContent(TypedDict, total=False):
    """``suspects`` request: the open suspect labels, most likely mistake first.

    ``refresh``: score the labels again now; ``wait``: reply when the scoring is
    done (up to ``timeout`` s); ``limit``: at most this many rows.
    """

    refresh: bool
    wait: bool
    timeout: float
    limit: int


class _SuspectsReplyRequired(TypedDict):
    open: int
    confirmed: int
    corrected: int


class SuspectsReplyContent(_SuspectsReplyRequired, total=False):
    """``suspects_reply``: ``items`` (``item_id``, ``uri``, ``label``, ``suggested``,
    ``self_confidence``, ``rank``), review counts, and the scoring's ``round``,
    ``n_scored``, ``time`` (epoch s), ``seconds``, ``computing``, ``error``."""

    items: list[dict]
    round: int | None
    n_scored: int
    time: float
    seconds: float
    computing: bool
    error: str


class SuspectsReadyContent(_SuspectsReplyRequired, total=False):
    """``suspects_ready`` event: the labels were scored (the reply's fields, no items)."""

    round: int | None
    n_scored: int
    time: float
    seconds: float
    computing: bool
    error: str


class _RelabelRequired(TypedDict):
    item_id: int
    label: int | str


class RelabelContent(_RelabelRequired, total=False):
    """``relabel`` request: a reviewed label; the same label confirms it, another corrects it.

    ``undo``: take back the item's newest review instead (``label``: the label it found).
    """

    labeler: str
    undo: bool


class _RelabelReplyRequired(TypedDict):
    item_id: int
    kind: str  # "confirmed", "corrected" or "undone"


class RelabelReplyContent(_RelabelReplyRequired, total=False):
    """``relabel_reply``: the review, journaled (``row_id``: a correction's label row)."""

    before: int | str
    after: int | str
    row_id: int | None


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
    ("fit_reply", FitReplyContent, "reply"),
    ("push_done", PushDoneContent, "event"),
    ("item_data", ItemDataContent, "request"),
    ("item_data_reply", ItemDataReplyContent, "reply"),
    ("next_items", NextItemsContent, "request"),
    ("leave_out", LeaveOutContent, "request"),
    ("leave_out_reply", LeaveOutReplyContent, "reply"),
    ("next_items_reply", NextItemsReplyContent, "reply"),
    ("history", HistoryContent, "request"),
    ("history_reply", HistoryReplyContent, "reply"),
    ("worker_error", ErrorContent, "event"),
    ("progress", ProgressContent, "event"),
    ("round_result", RoundResultContent, "event"),
    ("eliminated", EliminatedContent, "event"),
    ("quarantined", QuarantinedContent, "event"),
    ("pool_map", PoolMapContent, "request"),
    ("pool_map_reply", PoolMapReplyContent, "reply"),
    ("pool_map_ready", PoolMapReadyContent, "event"),
    ("queue_items", QueueItemsContent, "request"),
    ("queue_items_reply", QueueItemsReplyContent, "reply"),
    ("suspects", SuspectsContent, "request"),
    ("suspects_reply", SuspectsReplyContent, "reply"),
    ("suspects_ready", SuspectsReadyContent, "event"),
    ("relabel", RelabelContent, "request"),
    ("relabel_reply", RelabelReplyContent, "reply"),
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
    if _is_typeddict(tp):
        return isinstance(value, dict) and _typeddict_problem(value, tp) is None
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


@functools.cache
def _nested_hints(tp: type) -> dict[str, Any]:
    return get_type_hints(tp)


def _typeddict_problem(value: Mapping[str, Any], tp: Any) -> str | None:
    missing = sorted(k for k in tp.__required_keys__ if k not in value)
    if missing:
        return f"missing required field(s) {missing}"
    for key, hint in _nested_hints(tp).items():
        if key in value and not _matches(value[key], hint):
            got = value[key]
            shown = repr(got) if len(repr(got)) < 60 else f"a {type(got).__name__}"
            return f"field {key!r} must be {_type_name(hint)}; got {shown}"
    return None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def undeclared(msg_type: str, content: Mapping[str, Any]) -> list[str]:
    """Keys of ``content`` that ``msg_type``'s spec does not declare (tests hold the
    worker to its schemas with this; receivers accept extra keys)."""
    return sorted(k for k in content if k not in _HINTS[msg_type])


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


