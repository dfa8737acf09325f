"""Fail points: kill the worker at a named place, to test crash recovery deterministically.

Set ``ALAAS_FAILPOINTS="embed=3,fit=1"`` in a worker's environment and the worker
SIGKILLs itself the 3rd time it reaches ``failpoint("embed")`` (or the 1st time it
reaches ``fit``). Unset, a fail point is one dict lookup. The places: ``fetch``,
``embed``, ``fit`` and ``label`` (after the label is committed, before the reply).
"""

from __future__ import annotations

import os
import signal
import threading

_lock = threading.Lock()
_plan: dict[str, int] = {}
for _part in filter(None, os.environ.get("ALAAS_FAILPOINTS", "").split(",")):
    _name, _, _count = _part.partition("=")
    _plan[_name.strip()] = int(_count or 1)


def failpoint(name: str) -> None:
    """SIGKILL this process when ``name``'s countdown reaches zero."""
    if name not in _plan:
        return
    with _lock:
        _plan[name] -= 1
        if _plan[name] == 0:
            os.kill(os.getpid(), signal.SIGKILL)
