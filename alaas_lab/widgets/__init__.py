"""Jupyter widgets (anywidget) for a labeling session; front-ends in the top-level ``js/``.

- :class:`LabelingWidget`: one key per class, Skip, Undo, the next items always loaded.
- :class:`Dashboard`: accuracy per strategy and round, PSHEA forecasts and eliminations.
- :class:`PipelineMonitor`: per-stage progress and throughput, cache hits, quarantine.
- :class:`PoolMap`: the pool's embeddings in 2-D; hover shows an item, a lasso queues items.

Each widget talks to the worker through its own client sockets, from background
threads, so neither the kernel nor the browser waits on the worker. See
``docs/widgets.md`` for the traits and messages.
"""

from __future__ import annotations

from .dashboard import Dashboard
from .keys import KeyBinding, key_map
from .labeler import LabelingWidget
from .monitor import PipelineMonitor
from .pool_map import PoolMap

__all__ = ["Dashboard", "KeyBinding", "LabelingWidget", "PipelineMonitor", "PoolMap",
           "key_map"]
