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

from .messages import MESSAGE_KINDS, MESSAGE_TYPES, register_message_type
from .session import (
    DELIM,
    PROTOCOL_MAJOR,
    PROTOCOL_VERSION,
    Message,
    Session,
    error_content,
    new_key,
)

__all__ = [
    "DELIM",
    "MESSAGE_KINDS",
    "MESSAGE_TYPES",
    "PROTOCOL_MAJOR",
    "PROTOCOL_VERSION",
    "Message",
    "Session",
    "error_content",
    "new_key",
    "register_message_type",
]
