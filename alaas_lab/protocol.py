"""The wire format between the notebook client and the worker process.

This module is the only thing that crosses the process line: the worker and the
client both import it, and nothing else of ours. It is modelled on
jupyter_client's ``session.py`` but written for arrays.

A message on a ZeroMQ socket is a list of frames::

    [*routing, DELIM, signature, header, content, *buffers]

``routing``
    Zero or more frames before the delimiter: ROUTER identities, or the topic of
    a PUB message (the ``msg_type``, so a SUB socket can filter on it).
``DELIM``
    The literal ``b"<ALAAS|MSG>"``; it makes the routing prefix unambiguous.
``signature``
    Hex HMAC-SHA256 (ASCII) of the frames that follow, or ``b""`` when the
    session has no key.
``header``
    UTF-8 JSON object: ``msg_id``, ``msg_type``, ``version``, ``session``,
    ``date``, ``parent_id``.
``content``
    UTF-8 JSON object. Each numpy array inside it is replaced by a placeholder
    ``{"__ndarray__": i, "dtype": "<f4", "shape": [..]}`` and each bytes value by
    ``{"__bytes__": i}``; ``i`` indexes ``buffers``.
``buffers``
    Raw bytes of those arrays and bytes values, sent without copying.

Nothing is ever pickled: content is JSON, arrays are raw bytes with a dtype and
a shape beside them. See ``docs/protocol.md`` for the full description.

Examples
--------
>>> import numpy as np
>>> s = Session(key=b"secret")
>>> frames = s.serialize("query", {"budget": 10})
>>> msg = Session(key=b"secret").deserialize(frames)
>>> msg.msg_type, msg.content
('query', {'budget': 10})
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import traceback as _traceback
import types
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, TypedDict, Union, get_args, get_origin, get_type_hints

import numpy as np

from .errors import InputError, ProtocolError

__all__ = [
    "DELIM",
    "MESSAGE_KINDS",
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "Message",
    "Session",
    "error_content",
    "new_key",
    "register_message_type",
]

logger = logging.getLogger(__name__)

#: Version of the wire protocol, ``"MAJOR.MINOR"``; separate from the package version.
#: A peer with another MAJOR is refused; a newer MINOR may only add optional fields
#: and message types, which this side ignores or refuses by name.
PROTOCOL_VERSION = "1.0"
PROTOCOL_MAJOR = int(PROTOCOL_VERSION.split(".")[0])

#: Frame that separates routing frames (identities, topic) from the message itself.
DELIM = b"<ALAAS|MSG>"

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)$")
_HEADER_FIELDS = ("msg_id", "msg_type", "version", "session", "date")
_NDARRAY = "__ndarray__"
_BYTES = "__bytes__"
# dtype kinds that travel as raw bytes: bool, ints, floats, complex, datetimes and
# fixed-width strings. Object ("O") and structured/void ("V") dtypes are refused.
_ARRAY_KINDS = frozenset("biufcmMSU")
_ZMQ_ROUTER = 6  # zmq.ROUTER; the protocol itself does not need zmq imported


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


def _check_content(msg_type: str, content: Mapping[str, Any]) -> str | None:
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


# --------------------------------------------------------------------------- #
# Encoding content: JSON tree + raw buffers                                   #
# --------------------------------------------------------------------------- #


def _array_buffer(arr: np.ndarray, path: str) -> tuple[dict[str, Any], memoryview | bytes]:
    dtype = arr.dtype
    if dtype.kind not in _ARRAY_KINDS or dtype.hasobject:
        raise ProtocolError(
            f"cannot send the array at {path}: dtype {dtype!r} is not a plain numeric, "
            "bool, datetime or fixed-width string dtype. Object and structured arrays "
            "would need pickling, which this protocol never does; convert it, e.g. "
            "arr.astype(np.float32), or send a list of str.",
            reason="encode",
        )
    if not arr.flags.c_contiguous:  # (np.ascontiguousarray would turn 0-d into 1-d)
        arr = arr.copy(order="C")
    placeholder = {_NDARRAY: -1, "dtype": dtype.str, "shape": list(arr.shape)}
    if arr.size == 0:
        return placeholder, b""
    # A flat uint8 view works for every accepted dtype (datetime64 has no buffer format).
    return placeholder, memoryview(arr.reshape(-1).view(np.uint8))


def _encode(value: Any, buffers: list[Any], path: str, depth: int = 0) -> Any:
    """Return a JSON-able tree for ``value``; arrays and bytes go to ``buffers``."""
    if depth > 100:
        raise ProtocolError(
            f"content is nested more than 100 levels deep at {path}.", reason="encode"
        )
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProtocolError(
                f"cannot send {value!r} at {path}: JSON has no NaN or infinity; "
                "send None for a missing number.",
                reason="encode",
            )
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ProtocolError(
                    f"dict keys must be str; got {type(k).__name__} key {k!r} at {path}. "
                    "Convert keys with str() or send a list of pairs.",
                    reason="encode",
                )
            if k in (_NDARRAY, _BYTES):
                raise ProtocolError(
                    f"key {k!r} at {path} is reserved for array/bytes placeholders.",
                    reason="encode",
                )
            out[k] = _encode(v, buffers, f"{path}[{k!r}]", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_encode(v, buffers, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        placeholder, buf = _array_buffer(value, path)
        placeholder[_NDARRAY] = len(buffers)
        buffers.append(buf)
        return placeholder
    if isinstance(value, np.generic):  # numpy scalar: send the Python value
        if isinstance(value, (np.bool_, np.integer, np.floating, np.str_)):
            return _encode(value.item(), buffers, path, depth)
        raise ProtocolError(
            f"cannot send numpy scalar of dtype {value.dtype} at {path}; "
            "wrap it in an array with np.asarray(x).",
            reason="encode",
        )
    if isinstance(value, (bytes, bytearray, memoryview)):
        buf = memoryview(value)
        if not buf.c_contiguous:
            raise ProtocolError(f"bytes-like value at {path} is not contiguous.", reason="encode")
        buffers.append(buf.cast("B") if buf.ndim != 1 or buf.format != "B" else buf)
        return {_BYTES: len(buffers) - 1}
    raise ProtocolError(
        f"cannot send a {type(value).__module__}.{type(value).__qualname__} at {path}: "
        "content may hold only dict, list, str, int, float, bool, None, numpy arrays and "
        "bytes. This protocol never pickles; convert the object to one of those.",
        reason="encode",
    )


def _decode(value: Any, buffers: Sequence[memoryview], used: list[bool], path: str) -> Any:
    """Replace placeholders in a parsed JSON tree by arrays and bytes."""
    if isinstance(value, list):
        return [_decode(v, buffers, used, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if _NDARRAY in value or _BYTES in value:
        return _decode_placeholder(value, buffers, used, path)
    return {k: _decode(v, buffers, used, f"{path}[{k!r}]") for k, v in value.items()}


def _buffer_index(value: dict, key: str, n: int, used: list[bool], path: str) -> int:
    i = value[key]
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
        raise ProtocolError(
            f"placeholder at {path} points to buffer {i!r}, but the message has {n} "
            "buffer frame(s).",
            reason="buffers",
        )
    if used[i]:
        raise ProtocolError(f"buffer {i} is referenced twice (again at {path}).", reason="buffers")
    used[i] = True
    return i


def _decode_placeholder(
    value: dict, buffers: Sequence[memoryview], used: list[bool], path: str
) -> Any:
    if _BYTES in value:
        if set(value) != {_BYTES}:
            raise ProtocolError(
                f"bytes placeholder at {path} has extra keys {sorted(value)}.", reason="content"
            )
        return bytes(buffers[_buffer_index(value, _BYTES, len(buffers), used, path)])
    if set(value) != {_NDARRAY, "dtype", "shape"}:
        raise ProtocolError(
            f"array placeholder at {path} must have exactly the keys __ndarray__, dtype "
            f"and shape; got {sorted(value)}.",
            reason="content",
        )
    i = _buffer_index(value, _NDARRAY, len(buffers), used, path)
    shape = value["shape"]
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ProtocolError(
            f"array placeholder at {path} has shape {shape!r}; expected a list of "
            "non-negative ints.",
            reason="content",
        )
    try:
        dtype = np.dtype(value["dtype"]) if isinstance(value["dtype"], str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in _ARRAY_KINDS or dtype.hasobject:
        raise ProtocolError(
            f"array placeholder at {path} has dtype {value['dtype']!r}, which is not an "
            "accepted plain dtype (object and structured dtypes are refused).",
            reason="content",
        )
    buf = buffers[i]
    count = math.prod(shape)
    if buf.nbytes != count * dtype.itemsize:
        raise ProtocolError(
            f"array at {path} declares shape {tuple(shape)} of {dtype.str} "
            f"({count * dtype.itemsize} bytes) but its buffer frame has {buf.nbytes} bytes.",
            reason="buffers",
        )
    if count == 0:
        return np.empty(tuple(shape), dtype=dtype)
    arr = np.frombuffer(buf, dtype=dtype).reshape(tuple(shape))  # zero-copy view
    # Read-only: over inproc the frame may be the sender's own memory.
    arr.flags.writeable = False
    return arr


def _dumps(tree: Any) -> bytes:
    return json.dumps(tree, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(data: bytes, what: str, header: dict | None) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"the {what} frame is not UTF-8 ({exc.reason} at byte {exc.start}); "
            "the peer is not speaking the alaas_lab protocol.",
            reason="header" if what == "header" else "content",
            header=header,
        ) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(
            f"the {what} frame is not valid JSON: {exc}",
            reason="header" if what == "header" else "content",
            header=header,
        ) from None


# --------------------------------------------------------------------------- #
# Public API                                                                  #
# --------------------------------------------------------------------------- #


@dataclass
class Message:
    """One decoded message.

    Attributes
    ----------
    header : dict
        ``msg_id``, ``msg_type``, ``version``, ``session``, ``date``, ``parent_id``.
    content : dict
        With arrays and bytes back in place. Arrays decoded from received frames are
        read-only views on those frames (zero-copy); ``.copy()`` one to modify it.
    buffers : list of memoryview
        The raw buffer frames, in placeholder order.
    msg_type, msg_id : str
    parent_id : str or None
        ``msg_id`` of the request this message answers.
    identities : tuple of bytes
        Routing frames before the delimiter (ROUTER identities, or the PUB topic).
    """

    header: dict[str, Any]
    content: dict[str, Any]
    buffers: list[memoryview]
    msg_type: str
    msg_id: str
    parent_id: str | None
    identities: tuple[bytes, ...] = field(default_factory=tuple)


def new_key() -> bytes:
    """Return a fresh random signing key (64 hex characters, as bytes)."""
    return secrets.token_hex(32).encode("ascii")


def error_content(exc_or_msg: BaseException | str, **fields: Any) -> dict[str, Any]:
    """Build the content of an ``error`` message.

    Parameters
    ----------
    exc_or_msg : Exception or str
        The exception (its class name becomes ``ename``, its message ``evalue``, its
        ``reason`` attribute ``reason`` and its traceback ``traceback``), or a message.
    **fields
        Extra keys that say which item or argument failed, e.g. ``item_id=3``.

    Returns
    -------
    dict
        ``{"ename", "evalue", ["reason"], ["traceback"], **fields}``.
    """
    if isinstance(exc_or_msg, BaseException):
        content: dict[str, Any] = {"ename": type(exc_or_msg).__name__, "evalue": str(exc_or_msg)}
        reason = getattr(exc_or_msg, "reason", None)
        if isinstance(reason, str):
            content["reason"] = reason
        if exc_or_msg.__traceback__ is not None:
            content["traceback"] = _traceback.format_exception(
                type(exc_or_msg), exc_or_msg, exc_or_msg.__traceback__
            )
    else:
        content = {"ename": "Error", "evalue": str(exc_or_msg)}
    content.update(fields)
    return content


def _frame_bytes(frame: Any) -> bytes:
    if isinstance(frame, bytes):
        return frame
    if hasattr(frame, "bytes"):  # zmq.Frame
        return frame.bytes
    return bytes(frame)


def _frame_view(frame: Any) -> memoryview:
    if hasattr(frame, "buffer"):  # zmq.Frame: no copy
        frame = frame.buffer
    view = memoryview(frame)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return view


def _split_routing(frames: Sequence[Any]) -> tuple[tuple[bytes, ...], list[Any]]:
    """Split ``[*routing, DELIM, *message]`` at the first delimiter frame."""
    for i, frame in enumerate(frames):
        if _frame_bytes(frame) == DELIM:
            return tuple(_frame_bytes(f) for f in frames[:i]), list(frames[i + 1 :])
        if i >= 16:  # routing envelopes are short; do not scan buffers
            break
    raise ProtocolError(
        f"no {DELIM.decode()} delimiter frame in a message of {len(frames)} frame(s); "
        "the peer is not speaking the alaas_lab protocol.",
        reason="frames",
    )


def _parent_id(parent: Message | Mapping[str, Any] | str | None) -> str | None:
    if parent is None or isinstance(parent, str):
        return parent
    if isinstance(parent, Message):
        return parent.msg_id
    if isinstance(parent, Mapping) and isinstance(parent.get("msg_id"), str):
        return parent["msg_id"]
    raise InputError(
        f"parent must be a Message, a header dict with a msg_id, a msg_id str or None; "
        f"got {type(parent).__name__}."
    )


class Session:
    """Signs, serializes, checks and decodes messages for one peer.

    Parameters
    ----------
    key : bytes, default b""
        Shared HMAC-SHA256 key. Empty means unsigned (for ``ipc://`` and loopback
        defaults only); then signed messages are refused too, so a key mismatch
        between the two ends is reported rather than ignored.
    session_id : str, optional
        Goes into every header's ``session``; a fresh uuid4 hex by default.
    replay_window : int, default 65536
        How many recently seen ``msg_id`` values a signed session remembers; a
        message whose id is among them is refused as a replay.
    validate : bool, default True
        Check content against the message type's TypedDict on send and receive.

    Notes
    -----
    A Session is not thread-safe (neither are ZeroMQ sockets): use one per thread.
    Arrays are sent without copying, so do not modify an array until the send of
    the message holding it has returned and ZeroMQ has released it.
    """

    def __init__(
        self,
        key: bytes | str = b"",
        session_id: str | None = None,
        *,
        replay_window: int = 65536,
        validate: bool = True,
    ) -> None:
        if isinstance(key, str):
            key = key.encode("utf-8")
        if not isinstance(key, (bytes, bytearray)):
            raise InputError(f"key must be bytes (or str); got {type(key).__name__}.")
        if (
            isinstance(replay_window, bool)
            or not isinstance(replay_window, int)
            or (replay_window < 1)
        ):
            raise InputError(f"replay_window must be an int >= 1; got {replay_window!r}.")
        self._key = bytes(key)
        self.session_id = session_id if session_id is not None else uuid.uuid4().hex
        self.validate = bool(validate)
        self._replay_window = replay_window
        self._seen: OrderedDict[str, None] = OrderedDict()

    @property
    def signed(self) -> bool:
        """Whether messages are signed and checked with a key."""
        return bool(self._key)

    def __repr__(self) -> str:
        return f"Session(session_id={self.session_id!r}, signed={self.signed})"

    # -- signing ----------------------------------------------------------- #
    def sign(self, frames: Sequence[Any]) -> bytes:
        """Hex HMAC-SHA256 of ``[header, content, *buffers]``; ``b""`` when unsigned.

        Each frame is preceded by its length (8 bytes, big-endian), so bytes cannot be
        moved between frames without changing the signature.
        """
        if not self._key:
            return b""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for frame in frames:
            view = _frame_view(frame)
            mac.update(view.nbytes.to_bytes(8, "big"))
            mac.update(view)
        return mac.hexdigest().encode("ascii")

    # -- serialize --------------------------------------------------------- #
    def make_header(self, msg_type: str, parent: Any = None) -> dict[str, Any]:
        """A fresh header for ``msg_type``, answering ``parent`` if given."""
        return {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "version": PROTOCOL_VERSION,
            "session": self.session_id,
            "date": datetime.now(timezone.utc).isoformat(),
            "parent_id": _parent_id(parent),
        }

    def serialize(
        self,
        msg_type: str,
        content: Mapping[str, Any] | None = None,
        parent: Message | Mapping[str, Any] | str | None = None,
        *,
        header: Mapping[str, Any] | None = None,
    ) -> list[bytes | memoryview]:
        """Return the frames ``[signature, header, content, *buffers]`` of a message.

        Parameters
        ----------
        msg_type : str
            A name in ``MESSAGE_TYPES``.
        content : dict, optional
            JSON-able values, numpy arrays and bytes, nested freely.
        parent : Message, header dict or msg_id, optional
            The request this message answers.
        header : dict, optional
            Use this header instead of a fresh one (tests, re-sending).

        Raises
        ------
        ProtocolError
            ``reason="msg_type"`` for an unknown type, ``"content"`` when content does
            not fit the type's spec, ``"encode"`` for a value that cannot be sent.
        """
        return self._build(msg_type, content, parent, header)[1]

    def _build(
        self, msg_type: str, content: Any, parent: Any, header: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], list[Any]]:
        if msg_type not in _MESSAGE_TYPES:
            raise ProtocolError(
                f"unknown message type {msg_type!r}; known: {sorted(_MESSAGE_TYPES)}. "
                "Declare new types with register_message_type().",
                reason="msg_type",
            )
        content = {} if content is None else content
        if not isinstance(content, Mapping):
            raise ProtocolError(
                f"content must be a dict; got {type(content).__name__}.", reason="encode"
            )
        if self.validate:
            problem = _check_content(msg_type, content)
            if problem:
                raise ProtocolError(problem + ".", reason="content")
        buffers: list[Any] = []
        try:
            tree = _encode(dict(content), buffers, "content")
        except RecursionError:
            raise ProtocolError("content is nested too deeply.", reason="encode") from None
        hdr = dict(header) if header is not None else self.make_header(msg_type, parent)
        frames: list[Any] = [_dumps(hdr), _dumps(tree), *buffers]
        return hdr, [self.sign(frames), *frames]

    # -- deserialize ------------------------------------------------------- #
    def deserialize(self, frames: Sequence[Any], *, identities: tuple[bytes, ...] = ()) -> Message:
        """Check and decode ``[signature, header, content, *buffers]``.

        Frames may be bytes, memoryviews or ``zmq.Frame`` objects; buffer frames are
        not copied, so arrays in the content are read-only views on them.

        Raises
        ------
        ProtocolError
            Whatever is wrong, with ``reason`` one of ``"frames"``, ``"signature"``,
            ``"header"``, ``"version"``, ``"replay"``, ``"msg_type"``, ``"content"``,
            ``"buffers"``; its ``header`` is set once the header could be read.
        """
        try:
            return self._deserialize(frames)
        except ProtocolError as exc:
            exc.identities = tuple(identities)
            raise

    def _deserialize(self, frames: Sequence[Any]) -> Message:
        if len(frames) < 3:
            raise ProtocolError(
                f"a message needs at least 3 frames (signature, header, content); got "
                f"{len(frames)}.",
                reason="frames",
            )
        signature = _frame_bytes(frames[0])
        header_raw, content_raw = _frame_bytes(frames[1]), _frame_bytes(frames[2])
        buffers = [_frame_view(f) for f in frames[3:]]
        if self._key:
            if not signature:
                raise ProtocolError(
                    "message is not signed but this session requires a signature; "
                    "give both ends the same key.",
                    reason="signature",
                )
            expected = self.sign([header_raw, content_raw, *buffers])
            if not hmac.compare_digest(expected, signature):
                raise ProtocolError(
                    "bad message signature: the frames were altered or signed with another "
                    "key; give both ends the same key.",
                    reason="signature",
                )
        elif signature:
            raise ProtocolError(
                "message is signed but this session has no key; give both ends the same key.",
                reason="signature",
            )

        header = _loads(header_raw, "header", None)
        if not isinstance(header, dict):
            raise ProtocolError(
                f"the header frame must be a JSON object; got {type(header).__name__}.",
                reason="header",
            )
        bad = [f for f in _HEADER_FIELDS if not isinstance(header.get(f), str)]
        if bad:
            raise ProtocolError(
                f"the header is missing or has non-str field(s) {bad}.",
                reason="header",
                header=header,
            )
        parent_id = header.get("parent_id")
        if parent_id is not None and not isinstance(parent_id, str):
            raise ProtocolError(
                f"header parent_id must be a str or null; got {parent_id!r}.",
                reason="header",
                header=header,
            )
        match = _VERSION_RE.match(header["version"])
        if match is None:
            raise ProtocolError(
                f"header version {header['version']!r} is not 'MAJOR.MINOR'.",
                reason="version",
                header=header,
            )
        if int(match.group(1)) != PROTOCOL_MAJOR:
            raise ProtocolError(
                f"peer speaks protocol {header['version']}, this side speaks "
                f"{PROTOCOL_VERSION}; major versions differ. Install the same alaas_lab "
                "release on the client and the worker.",
                reason="version",
                header=header,
            )
        msg_id = header["msg_id"]
        if self._key:
            if msg_id in self._seen:
                raise ProtocolError(
                    f"message {msg_id} was already received (replay); refused.",
                    reason="replay",
                    header=header,
                )
            self._seen[msg_id] = None
            if len(self._seen) > self._replay_window:
                self._seen.popitem(last=False)
        msg_type = header["msg_type"]
        if msg_type not in _MESSAGE_TYPES:
            raise ProtocolError(
                f"unknown message type {msg_type!r}; this side knows {sorted(_MESSAGE_TYPES)}.",
                reason="msg_type",
                header=header,
            )

        tree = _loads(content_raw, "content", header)
        if not isinstance(tree, dict):
            raise ProtocolError(
                f"the content frame must be a JSON object; got {type(tree).__name__}.",
                reason="content",
                header=header,
            )
        used = [False] * len(buffers)
        try:
            content = _decode(tree, buffers, used, "content")
        except ProtocolError as exc:
            exc.header = header
            raise
        except RecursionError:
            raise ProtocolError(
                "content is nested too deeply.", reason="content", header=header
            ) from None
        if not all(used):
            raise ProtocolError(
                f"buffer frame(s) {[i for i, u in enumerate(used) if not u]} are not "
                "referenced by the content.",
                reason="buffers",
                header=header,
            )
        if self.validate:
            problem = _check_content(msg_type, content)
            if problem:
                raise ProtocolError(problem + ".", reason="content", header=header)
        return Message(
            header=header,
            content=content,
            buffers=buffers,
            msg_type=msg_type,
            msg_id=msg_id,
            parent_id=parent_id,
        )

    # -- sockets ----------------------------------------------------------- #
    def send(
        self,
        socket: Any,
        msg_type: str,
        content: Mapping[str, Any] | None = None,
        *,
        parent: Message | Mapping[str, Any] | str | None = None,
        identities: Sequence[bytes] = (),
        flags: int = 0,
    ) -> str:
        """Serialize and send one message; return its ``msg_id``.

        ``identities`` go before the delimiter: ROUTER routing ids, or a topic.
        """
        header, frames = self._build(msg_type, content, parent, None)
        socket.send_multipart([*identities, DELIM, *frames], flags=flags, copy=False)
        return header["msg_id"]

    def publish(self, socket: Any, msg_type: str, content: Mapping[str, Any] | None = None) -> str:
        """Send an event on a PUB socket with ``msg_type`` as its topic frame.

        Subscribers filter with ``sub.subscribe(b"progress")`` or take all with ``b""``.
        """
        return self.send(socket, msg_type, content, identities=(msg_type.encode("utf-8"),))

    def recv(self, socket: Any, flags: int = 0) -> Message:
        """Receive and decode one message.

        Raises
        ------
        ProtocolError
            For anything malformed; answer it with :meth:`send_error` (its
            ``identities`` route the reply) instead of crashing.
        zmq.Again
            With ``flags=zmq.NOBLOCK`` when nothing is waiting.
        """
        frames = socket.recv_multipart(flags=flags, copy=False)
        try:
            identities, rest = _split_routing(frames)
        except ProtocolError as exc:
            # A ROUTER always prepends the sender's id: keep it so the error reply
            # reaches whoever sent the garbage.
            if frames and getattr(socket, "type", None) == _ZMQ_ROUTER:
                exc.identities = (_frame_bytes(frames[0]),)
            raise
        msg = self.deserialize(rest, identities=identities)
        msg.identities = identities
        return msg

    def reply(
        self,
        socket: Any,
        request: Message,
        msg_type: str,
        content: Mapping[str, Any] | None = None,
    ) -> str:
        """Answer ``request``: its ``msg_id`` becomes the ``parent_id``, routed back."""
        return self.send(socket, msg_type, content, parent=request, identities=request.identities)

    def send_error(
        self,
        socket: Any,
        error: BaseException | str,
        *,
        request: Message | None = None,
        **fields: Any,
    ) -> str:
        """Send an ``error`` reply for a failed request or for frames that did not decode.

        For a :class:`ProtocolError` from :meth:`recv`, the reply is routed with the
        error's identities and names the offending message as parent when its header
        could be read; for garbage frames it has no parent.
        """
        parent: Any = request
        identities: Sequence[bytes] = request.identities if request is not None else ()
        if request is None and isinstance(error, ProtocolError):
            identities = error.identities
            if error.header is not None and isinstance(error.header.get("msg_id"), str):
                parent = error.header["msg_id"]
        return self.send(
            socket, "error", error_content(error, **fields), parent=parent, identities=identities
        )

    def error_frames(
        self, error: BaseException | str, *, parent: Any = None, **fields: Any
    ) -> list[bytes | memoryview]:
        """Frames of an ``error`` message (``[DELIM, signature, header, content]``).

        For transports that send frames themselves; :meth:`send_error` is the usual way.
        """
        if parent is None and isinstance(error, ProtocolError) and error.header is not None:
            parent = error.header.get("msg_id")
            parent = parent if isinstance(parent, str) else None
        return [DELIM, *self.serialize("error", error_content(error, **fields), parent)]
