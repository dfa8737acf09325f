"""``python -m alaas_lab.worker --config FILE --session-dir DIR``: one worker, in the foreground."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..config import load_config
from .loop import run_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alaas_lab.worker", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--session-dir", required=True, help="journal and connection file")
    parser.add_argument("--key-env", default="ALAAS_KEY",
                        help="environment variable holding the hex HMAC key (default ALAAS_KEY)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    key = bytes.fromhex(os.environ.get(args.key_env, ""))
    run_worker(load_config(args.config), args.session_dir, key=key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
