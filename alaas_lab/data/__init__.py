"""The data room: list items (URIs), fetch their bytes, decode them, set bad ones aside.

Everything goes through fsspec, so local paths, ``file://``, ``s3://``, ``http(s)://`` and
``memory://`` work alike; nothing above this package knows which backend holds an item.
See ``docs/data.md``.
"""

from __future__ import annotations

from ._fs import is_local
from .decode import DecodedItem, Decoder, decode_array, decode_image, decode_text
from .fetch import Fetcher, FetchResult, normalize_info
from .quarantine import Quarantine, quarantine
from .retry import Failure, RetryPolicy, classify_error
from .uris import confine, expand

__all__ = [
    "DecodedItem",
    "Decoder",
    "Failure",
    "FetchResult",
    "Fetcher",
    "Quarantine",
    "RetryPolicy",
    "classify_error",
    "confine",
    "decode_array",
    "decode_image",
    "decode_text",
    "expand",
    "is_local",
    "normalize_info",
    "quarantine",
]
