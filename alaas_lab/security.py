"""ZeroMQ CURVE keys for workers that listen beyond loopback.

A remote worker encrypts and authenticates every connection with CURVE: it holds
a server key pair, and only clients whose public keys lie in its ``authorized/``
folder may connect (ZeroMQ's ZAP handler refuses the rest during the handshake,
before any message is read). On top, every message is HMAC-signed
(:mod:`alaas_lab.protocol`).

Layout of a key folder made by :func:`generate_keys` (``alaas-lab keygen DIR``)::

    DIR/server.key            public key of the worker (give it to clients)
    DIR/server.key_secret     its secret key (stays with the worker)
    DIR/client.key            a client's public key, also copied to DIR/authorized/
    DIR/client.key_secret     that client's secret key (give it to the user)
    DIR/authorized/           public keys of the clients allowed to connect
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from .errors import ConfigError

__all__ = ["CurveKeys", "client_keys", "generate_keys", "server_keys"]


@dataclass(frozen=True)
class CurveKeys:
    public: bytes
    secret: bytes


def generate_keys(folder: str | Path, *, client: str = "client") -> Path:
    """Create a server key pair, one client key pair, and authorize that client."""
    if not zmq.has("curve"):
        raise ConfigError("this libzmq was built without CURVE; install pyzmq from PyPI.")
    root = Path(folder).expanduser()
    authorized = root / "authorized"
    authorized.mkdir(parents=True, exist_ok=True)
    if not (root / "server.key_secret").exists():
        zmq.auth.create_certificates(root, "server")
    public, _ = zmq.auth.create_certificates(root, client)
    shutil.copy(public, authorized / Path(public).name)
    for secret in root.glob("*.key_secret"):
        secret.chmod(0o600)
    return root


def _load(path: Path, what: str) -> CurveKeys:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the CURVE {what} key {path} ({exc}); create keys with "
                          "'alaas-lab keygen DIR'.") from None
    if secret is None:
        raise ConfigError(f"{path} holds no secret key; pass the '.key_secret' file.")
    return CurveKeys(public, secret)


def server_keys(folder: str | Path) -> tuple[CurveKeys, Path]:
    """The worker's key pair and its folder of authorized client keys."""
    root = Path(folder).expanduser()
    keys = _load(root / "server.key_secret", "server")
    authorized = root / "authorized"
    if not authorized.is_dir() or not any(authorized.glob("*.key")):
        raise ConfigError(f"{authorized} lists no authorized client key; a CURVE worker would "
                          "refuse everyone. Create one with 'alaas-lab keygen DIR'.")
    return keys, authorized


def client_keys(secret_file: str | Path) -> CurveKeys:
    """A client's key pair from its ``.key_secret`` file."""
    return _load(Path(secret_file).expanduser(), "client")


def server_public_key(folder: str | Path) -> bytes:
    public, _ = zmq.auth.load_certificate(Path(folder).expanduser() / "server.key")
    return public
