"""Content encoding: a JSON tree plus raw buffers for arrays and bytes; never pickle.

Each numpy array inside content is replaced by a placeholder
``{"__ndarray__": i, "dtype": "<f4", "shape": [..]}`` and each bytes value by
``{"__bytes__": i}``; ``i`` indexes the buffer frames, sent without copying.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ProtocolError

_NDARRAY = "__ndarray__"
_BYTES = "__bytes__"
# dtype kinds that travel as raw bytes: bool, ints, floats, complex, datetimes and
# fixed-width strings. Object ("O") and structured/void ("V") dtypes are refused.
_ARRAY_KINDS = frozenset("biufcmMSU")



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


def encode_tree(value: Any, buffers: list[Any], path: str, depth: int = 0) -> Any:
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
            out[k] = encode_tree(v, buffers, f"{path}[{k!r}]", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [encode_tree(v, buffers, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        placeholder, buf = _array_buffer(value, path)
        placeholder[_NDARRAY] = len(buffers)
        buffers.append(buf)
        return placeholder
    if isinstance(value, np.generic):  # numpy scalar: send the Python value
        if isinstance(value, (np.bool_, np.integer, np.floating, np.str_)):
            return encode_tree(value.item(), buffers, path, depth)
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


def decode_tree(value: Any, buffers: Sequence[memoryview], used: list[bool], path: str) -> Any:
    """Replace placeholders in a parsed JSON tree by arrays and bytes."""
    if isinstance(value, list):
        return [decode_tree(v, buffers, used, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if _NDARRAY in value or _BYTES in value:
        return _decode_placeholder(value, buffers, used, path)
    return {k: decode_tree(v, buffers, used, f"{path}[{k!r}]") for k, v in value.items()}


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


def dumps(tree: Any) -> bytes:
    return json.dumps(tree, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(data: bytes, what: str, header: dict | None) -> Any:
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


