"""What a user hands to ``push``, made into one of three kinds of items, or refused.

A notebook user pushes whatever they hold: an array of any rank, a list of arrays,
a pandas DataFrame or Series, PIL images, paths, globs, URIs, or (in a text
session) raw sentences. :func:`push_input` turns each of these into

- ``uris``: strings the worker expands and fetches (files, globs, s3://, http(s)://),
- ``rows``: one numeric array ``(n_items, ...)``, or
- ``texts``: raw strings, embedded as they are (text sessions only),

and refuses anything else before a byte is sent, with one line that says what
was received and what is accepted. It imports numpy only: pandas and PIL objects
are recognised by their interfaces.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .errors import InputError

__all__ = ["PushInput", "looks_like_uri", "push_input"]

ACCEPTED = ("a numeric array (n_items, ...), a list of same-shape arrays or PIL images, a "
            "numeric DataFrame, a path, URI or glob (or a list of them)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_FILE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}$")


@dataclass(frozen=True)
class PushInput:
    """Items ready for the wire: exactly one of ``uris``, ``rows`` and ``texts`` is set."""

    kind: Literal["uris", "rows", "texts"]
    uris: list[str] | None = None
    rows: np.ndarray | None = None
    texts: list[str] | None = None

    @property
    def n_items(self) -> int | None:
        """How many items, where known before the worker expands globs."""
        if self.rows is not None:
            return len(self.rows)
        if self.texts is not None:
            return len(self.texts)
        return None


def looks_like_uri(text: str) -> bool:
    """Whether a string names a file or an object (rather than being a sentence).

    A URI has a scheme (``s3://``), or is one word that looks like a path:
    it starts with ``/ ./ ../ ~``, holds a ``/`` or a glob character, or ends in
    a file suffix; a string naming an existing local path always counts.
    """
    text = text.strip()
    if _SCHEME.match(text) or text.startswith(("/", "./", "../", "~")):
        return True
    if not text or any(c.isspace() for c in text):
        return os.path.exists(text)
    return bool("/" in text or "\\" in text or any(c in text for c in "*?[")
                or _FILE_SUFFIX.search(text) or os.path.exists(text))


def push_input(data: Any, *, text_session: bool = False) -> PushInput:
    """Classify and check what was given to ``push``.

    Parameters
    ----------
    data : array-like, DataFrame, Series, PIL image, str, path, or an iterable of these
    text_session : bool, default False
        Whether the session embeds text (``data.kind: text``): then strings that do
        not look like URIs (:func:`looks_like_uri`) are raw texts.

    Returns
    -------
    PushInput

    Raises
    ------
    InputError
        For anything not listed above, an empty input, arrays of unequal shapes,
        non-numeric or 1-D rows, or URIs mixed with texts or arrays.
    """
    if data is None:
        raise InputError(f"push got None; give {ACCEPTED}.")
    if isinstance(data, (str, os.PathLike)):
        return _strings([os.fspath(data)], text_session)
    if isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"push got {type(data).__name__}; give the file's path or URI, or "
                         "decode it first (e.g. np.asarray(PIL.Image.open(io.BytesIO(b)))).")
    if isinstance(data, dict):
        raise InputError(f"push got a dict ({len(data)} keys); give its values, e.g. "
                         f"list(d.values()), or {ACCEPTED}.")
    if _is_dataframe(data):
        return _dataframe(data, text_session)
    if _is_series(data):
        return push_input(list(data.to_numpy()), text_session=text_session)
    if _is_pil(data):
        return PushInput("rows", rows=_rows(np.asarray(data)[None], "the PIL image"))
    if isinstance(data, np.ndarray):
        if data.dtype.kind in "US" or (data.dtype.kind == "O" and data.ndim == 1):
            return push_input(data.tolist(), text_session=text_session)
        return PushInput("rows", rows=_rows(data, "the array"))
    if not isinstance(data, Iterable):
        raise InputError(f"push got a {type(data).__name__}; give {ACCEPTED}.")
    items = list(data)
    if not items:
        raise InputError(f"push got an empty {type(data).__name__}: nothing to push; "
                         f"give {ACCEPTED}.")
    is_str = [isinstance(x, (str, os.PathLike)) for x in items]
    if all(is_str):
        return _strings([os.fspath(x) for x in items], text_session)
    if any(is_str):
        first = is_str.index(False)
        raise InputError(f"push got a list that mixes strings with other things (item {first} "
                         f"is a {type(items[first]).__name__}); push URIs and arrays separately.")
    return PushInput("rows", rows=_stack(items))


def _strings(strings: list[str], text_session: bool) -> PushInput:
    if not text_session:
        return PushInput("uris", uris=strings)
    is_uri = [looks_like_uri(s) for s in strings]
    if all(is_uri):
        return PushInput("uris", uris=strings)
    if not any(is_uri):
        empty = [i for i, s in enumerate(strings) if not s.strip()]
        if empty:
            raise InputError(f"push got an empty text at position {empty[0]} "
                             f"({len(empty)} in all); drop empty texts and push again.")
        return PushInput("texts", texts=strings)
    k = is_uri.index(True) if not is_uri[0] else is_uri.index(False)
    raise InputError(f"push got a list that mixes URIs and raw texts ({strings[0]!r} and "
                     f"{_short(strings[k])!r}); push files and texts in separate calls.")


def _rows(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise InputError(f"push got {what} of dtype {arr.dtype}; give numeric rows, or a "
                         "list of URIs (str).")
    if arr.ndim < 2:
        raise InputError(
            f"push got {what} of shape {arr.shape}: rows are items, so give shape "
            "(n_items, ...); for one item use x[None], for n single values x.reshape(-1, 1).")
    if len(arr) == 0:
        raise InputError(f"push got {what} with 0 rows (shape {arr.shape}): nothing to push.")
    return arr


def _stack(items: list[Any]) -> np.ndarray:
    arrays = []
    for i, item in enumerate(items):
        try:
            arr = np.asarray(item)
        except Exception as exc:  # ragged nested lists and the like
            raise InputError(f"push: item {i} ({type(item).__name__}) is not an array: "
                             f"{exc}") from None
        if arr.dtype.kind not in "biuf":
            raise InputError(f"push: item {i} is a {type(item).__name__} of dtype {arr.dtype}; "
                             f"give {ACCEPTED}.")
        if arrays and arr.shape != arrays[0].shape:
            raise InputError(
                f"push: item {i} has shape {arr.shape} but item 0 has {arrays[0].shape}; "
                "resize them to one shape (or push the files: the pipeline resizes for "
                "backbones with a fixed input size).")
        arrays.append(arr)
    return _rows(np.stack(arrays), "the list")


def _dataframe(df: Any, text_session: bool) -> PushInput:
    kinds = [np.dtype(t).kind if isinstance(t, np.dtype) else "O" for t in df.dtypes]
    if len(df) == 0:
        raise InputError(f"push got a DataFrame with 0 rows (columns {list(df.columns)[:5]}): "
                         "nothing to push.")
    if all(k in "biuf" for k in kinds):
        return PushInput("rows", rows=_rows(df.to_numpy(), "the DataFrame"))
    if len(kinds) == 1:
        return push_input(list(df.iloc[:, 0].to_numpy()), text_session=text_session)
    bad = [c for c, k in zip(df.columns, kinds, strict=True) if k not in "biuf"]
    raise InputError(
        f"push got a DataFrame with non-numeric column(s) {bad[:5]}; push its numeric "
        "columns as features (df.select_dtypes('number')), or one column of paths/URIs "
        f"or texts (df[{str(bad[0])!r}]).")


def _is_dataframe(x: Any) -> bool:
    return type(x).__name__ == "DataFrame" and hasattr(x, "dtypes") and hasattr(x, "iloc")


def _is_series(x: Any) -> bool:
    return type(x).__name__ == "Series" and hasattr(x, "to_numpy") and hasattr(x, "dtype")


def _is_pil(x: Any) -> bool:
    return type(x).__module__.startswith("PIL.") and hasattr(x, "getbands")


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
