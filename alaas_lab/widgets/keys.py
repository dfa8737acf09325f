"""The labeling widget's key map: one key per class, plus Skip, Undo and Accept.

The browser matches keys by ``KeyboardEvent.code`` (the physical key), so a
class keeps its key whatever the keyboard layout types. Classes named by one
distinct digit or letter each (``0``–``9``, ``a``–``z``) get their own name as
key, so "3" labels "3". Otherwise keys go in the order the number row suggests:
``1``–``9``, then ``0``, then ``A``–``Z`` (36 keys); classes beyond the 36th get
a button but no key.

>>> [b.key for b in key_map(["cat", "dog", "bird"])]
['1', '2', '3']
>>> [b.key for b in key_map(["0", "1", "2"])]
['0', '1', '2']
>>> key_map(["cat", "dog"], keys="cd")[1]
KeyBinding(label='dog', key='D', code='KeyD')
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InputError

__all__ = ["ACTION_CODES", "DEFAULT_KEYS", "KeyBinding", "code_for", "key_map"]

#: Keys in the order classes get them: the number row from 1, then the alphabet.
DEFAULT_KEYS: tuple[str, ...] = (*"123456789", "0", *string.ascii_uppercase)
#: ``event.code`` of the actions that every labeling widget has (Accept: take the model's
#: suggestion for the item shown; the view also takes ``NumpadEnter``).
ACTION_CODES: dict[str, str] = {"skip": "Space", "undo": "Backspace", "accept": "Enter"}


@dataclass(frozen=True)
class KeyBinding:
    """One class's button: its label, the key shown on it and the ``event.code`` it answers."""

    label: str
    key: str
    code: str


def code_for(key: str) -> str:
    """``KeyboardEvent.code`` of a digit or letter: ``"7"`` → ``"Digit7"``, ``"q"`` → ``"KeyQ"``.

    Raises
    ------
    InputError
        ``key`` is not one character among 0-9 and A-Z.
    """
    if isinstance(key, str) and len(key) == 1:
        if key in string.digits:
            return f"Digit{key}"
        if key.upper() in string.ascii_uppercase:
            return f"Key{key.upper()}"
    raise InputError(
        f"keys must be single digits or letters (0-9, A-Z); got {key!r}. "
        "Space, Backspace and Enter are taken by Skip, Undo and Accept."
    )


def _own_keys(classes: list[str]) -> bool:
    """Whether each class can be answered by its own name: distinct single digits or letters."""
    keys = {c.upper() for c in classes}
    return len(keys) == len(classes) and all(
        len(c) == 1 and c.isascii() and c.isalnum() for c in classes)


def key_map(classes: Sequence[str], *, keys: Sequence[str] | str | None = None
            ) -> list[KeyBinding]:
    """One :class:`KeyBinding` per class, in class order.

    Parameters
    ----------
    classes : sequence of str, length n_classes
        The class names, as the worker's config lists them.
    keys : str or sequence of str, optional
        One key per class (e.g. ``"0123456789"`` for digits, so "3" labels "3"),
        each a digit or a letter, all distinct (letters are case-insensitive).
        Default: each class its own name when every name is one digit or ASCII
        letter and no two share a key (``"a"`` and ``"A"`` do); else ``1``–``9``,
        ``0``, ``A``–``Z`` in class order, and classes past the 36th get ``key=""``
        and ``code=""`` (a button only).

    Returns
    -------
    bindings : list of KeyBinding, length n_classes
    """
    classes = [str(c) for c in classes]
    if keys is None and _own_keys(classes):
        keys = classes
    if keys is None:
        chosen = list(DEFAULT_KEYS[: len(classes)]) + [""] * max(0, len(classes) - 36)
    else:
        chosen = [k.upper() for k in keys]
        if len(chosen) != len(classes):
            raise InputError(
                f"keys must give one key per class: {len(classes)} classes "
                f"({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}) but "
                f"{len(chosen)} keys ({''.join(chosen)!r})."
            )
        seen: dict[str, int] = {}
        for i, k in enumerate(chosen):
            code_for(k)
            if k in seen:
                raise InputError(
                    f"keys must be distinct; {k!r} is given to both {classes[seen[k]]!r} "
                    f"and {classes[i]!r}."
                )
            seen[k] = i
    return [KeyBinding(c, k, code_for(k) if k else "") for c, k in zip(classes, chosen,
                                                                     strict=True)]
