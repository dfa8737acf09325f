"""Messages on ZeroMQ sockets: framing, HMAC signatures, replay checks, errors."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import traceback as _traceback
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import AlaasError, InputError, ProtocolError
from .codec import decode_tree, dumps, encode_tree, loads
from .messages import MESSAGE_TYPES, check_content

#: Version of the wire protocol, ``"MAJOR.MINOR"``; separate from the package version.
#: A peer with another MAJOR is refused; a newer MINOR may only add optional fields
#: and message types, which this side ignores or refuses by name.
PROTOCOL_VERSION = "1.0"
PROTOCOL_MAJOR = int(PROTOCOL_VERSION.split(".")[0])

#: Frame that separates routing frames (identities, topic) from the message itself.
DELIM = b"<ALAAS|MSG>"

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)$")
_HEADER_FIELDS = ("msg_id", "msg_type", "version", "session", "date")
_ZMQ_ROUTER = 6  # zmq.ROUTER; the protocol itself does not need zmq imported


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
        ``{"ename", "evalue", "reason", ["traceback"], **fields}``; ``reason`` is the
        exception's code (:data:`~alaas_lab.errors.REASONS`), ``"internal"`` for an
        exception that is not an :class:`~alaas_lab.errors.AlaasError`.
    """
    if isinstance(exc_or_msg, BaseException):
        content: dict[str, Any] = {"ename": type(exc_or_msg).__name__, "evalue": str(exc_or_msg)}
        reason = getattr(exc_or_msg, "reason", None)
        # an exception of ours names its code; anything else is a bug in the worker
        content["reason"] = reason if isinstance(reason, str) and isinstance(
            exc_or_msg, AlaasError) else "internal"
        if exc_or_msg.__traceback__ is not None:
            content["traceback"] = _traceback.format_exception(
                type(exc_or_msg), exc_or_msg, exc_or_msg.__traceback__
            )
    else:
        content = {"ename": "Error", "evalue": str(exc_or_msg), "reason": "error"}
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
        if msg_type not in MESSAGE_TYPES:
            raise ProtocolError(
                f"unknown message type {msg_type!r}; known: {sorted(MESSAGE_TYPES)}. "
                "Declare new types with register_message_type().",
                reason="msg_type",
            )
        content = {} if content is None else content
        if not isinstance(content, Mapping):
            raise ProtocolError(
                f"content must be a dict; got {type(content).__name__}.", reason="encode"
            )
        if self.validate:
            problem = check_content(msg_type, content)
            if problem:
                raise ProtocolError(problem + ".", reason="content")
        buffers: list[Any] = []
        try:
            tree = encode_tree(dict(content), buffers, "content")
        except RecursionError:
            raise ProtocolError("content is nested too deeply.", reason="encode") from None
        hdr = dict(header) if header is not None else self.make_header(msg_type, parent)
        frames: list[Any] = [dumps(hdr), dumps(tree), *buffers]
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

        header = loads(header_raw, "header", None)
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
        if msg_type not in MESSAGE_TYPES:
            raise ProtocolError(
                f"unknown message type {msg_type!r}; this side knows {sorted(MESSAGE_TYPES)}.",
                reason="msg_type",
                header=header,
            )

        tree = loads(content_raw, "content", header)
        if not isinstance(tree, dict):
            raise ProtocolError(
                f"the content frame must be a JSON object; got {type(tree).__name__}.",
                reason="content",
                header=header,
            )
        used = [False] * len(buffers)
        try:
            content = decode_tree(tree, buffers, used, "content")
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
            problem = check_content(msg_type, content)
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

