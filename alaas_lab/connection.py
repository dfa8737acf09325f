"""What a worker and its clients agree on outside the wire: the connection file, loopback.

Both sides import this (the server launcher and the client without importing
the worker, which pulls in torch, the journal and the pipeline).
"""

from __future__ import annotations

import ipaddress

__all__ = ["CONNECTION_FILE", "is_loopback"]

#: Name of the worker's connection file in its session directory (mode 0600): its
#: endpoints, pid, protocol version and message key.
CONNECTION_FILE = "worker.json"

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface only."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
