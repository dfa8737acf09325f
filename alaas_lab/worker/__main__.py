"""``python -m alaas_lab.worker --config FILE --session-dir DIR``: one worker, in the foreground."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..config import load_config
from ..errors import AlaasError
from ..plugins import load_session_plugins
from .loop import run_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alaas_lab.worker", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--session-dir", required=True, help="journal and connection file")
    parser.add_argument("--key-env", default="ALAAS_KEY",
                        help="environment variable holding the hex HMAC key (default ALAAS_KEY; "
                        "unset: a fresh random key, written to the connection file)")
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="exit once the process with this pid has exited")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # taken out of the environment: what the worker starts must not inherit the key
    hex_key = os.environ.pop(args.key_env, "")
    try:
        key = bytes.fromhex(hex_key) if hex_key else None
    except ValueError:
        print(f"{parser.prog}: error: ${args.key_env} is not a hex key.", file=sys.stderr)
        return 2
    try:
        # the session's plugins (%%alaas strategy) first, then the config's own
        # (load_config imports them) before any strategy or backbone name is checked
        load_session_plugins(args.session_dir)
        run_worker(load_config(args.config), args.session_dir, key=key,
                   parent_pid=args.parent_pid)
    except AlaasError as exc:  # one line in the log: Server.start shows its tail
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
