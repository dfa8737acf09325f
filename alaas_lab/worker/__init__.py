"""The worker process: pool state, the ingest pipeline, and the ZeroMQ loop.

Run one with ``alaas-lab serve config.yml``, ``python -m alaas_lab.worker``, or
from Python with :class:`alaas_lab.Server`.
"""

from ..connection import CONNECTION_FILE
from .loop import Worker, run_worker
from .state import BudgetError, PoolSession

__all__ = ["CONNECTION_FILE", "BudgetError", "PoolSession", "Worker", "run_worker"]
