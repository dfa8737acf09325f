"""The ``alaas-lab`` command line.

``alaas-lab demo``
    simulated active-learning sessions on digits (or MNIST), several strategies
    and seeds, printed as a round-by-round table of mean top-1 accuracy.
``alaas-lab serve config.yml``
    a worker process in the foreground, serving the session in ``--session-dir``.
``alaas-lab --version``

Subcommands register themselves through :func:`build_parser`; add one with a
function that takes the subparsers object (see :func:`_add_demo`).

Every failure is one line on stderr, ``alaas-lab[ COMMAND]: error: ...``, and a
non-zero exit: 2 for usage, input and config errors, 1 for anything unexpected
(``-v`` adds its traceback), 130 for Ctrl-C. Never a bare traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

import numpy as np

from ._version import __version__
from .errors import AlaasError, InputError, ModelError

DEFAULT_STRATEGIES = "random,least_confidence"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (subcommand parsers inherit it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(
        prog="alaas-lab",
        description="Active learning as a service, native to Jupyter.",
    )
    parser.add_argument("--version", action="version", version=f"alaas-lab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(sub)
    _add_serve(sub)
    _add_keygen(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    0 ok, 2 usage, input or config error, 1 an unexpected error, 130 Ctrl-C. A
    failure prints one line to stderr; ``-v`` logs an unexpected error's traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except AlaasError as exc:
        _fail(args.command, str(exc))
        return 2
    except KeyboardInterrupt:
        _fail(args.command, "interrupted.")
        return 130
    except Exception as exc:  # a bug or an unforeseen OS error: still one line
        if args.verbose:
            logging.getLogger(__name__).exception("%s failed", args.command)
        _fail(args.command, f"{type(exc).__name__}: {exc}"
              + ("" if args.verbose else " (run with -v for the traceback)"))
        return 1


def _fail(command: str, message: str) -> None:
    """Print ``message`` as one line on stderr (a multi-line message is joined)."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    print(f"alaas-lab {command}: error: {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ serve
def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="run a worker in the foreground",
                       description="Run an alaas_lab worker for CONFIG until stopped (Ctrl-C, "
                       "SIGTERM, a client's stop() or al_worker.idle_timeout). Every message is "
                       "signed with a fresh key that only the connection file "
                       "SESSION_DIR/worker.json (mode 0600) holds: clients attach with it, "
                       "e.g. Lab(session_dir=...) or Client(connection_file=...).")
    p.add_argument("config", help="YAML config file (the paper's shape)")
    p.add_argument("--session-dir", default=None,
                   help="journal, log and connection file (default: the config's session_dir, "
                   "else ./alaas_sessions/<name>)")
    p.add_argument("--key-file", default=None,
                   help="file holding the hex HMAC key clients must share (default: a fresh "
                   "random key, written to the connection file only)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """The ``serve`` subcommand: the session directory is prepared as ``Server.start`` does."""
    from .config import load_config
    from .server import session_path, write_session_config
    from .worker import run_worker

    config = load_config(args.config)
    session_dir = session_path(config, args.session_dir)
    key = None  # the worker makes a fresh one
    if args.key_file:
        try:
            key = bytes.fromhex(Path(args.key_file).read_text().strip())
        except (OSError, ValueError) as exc:
            raise InputError(f"--key-file {args.key_file}: cannot read a hex key ({exc}).") \
                from None
        if not key:
            raise InputError(f"--key-file {args.key_file} is empty; write a hex key into it "
                             "(e.g. python -c 'import secrets; print(secrets.token_hex(32))') "
                             "or leave --key-file out for a fresh key.")
    write_session_config(config, session_dir)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(f"alaas-lab serve: session {session_dir}; connection file (holds the key) "
          f"{session_dir / 'worker.json'}; attach with Lab(session_dir={str(session_dir)!r}) "
          "or Client(connection_file=...)", flush=True)
    run_worker(config, session_dir, key=key)
    return 0


def _add_keygen(sub: Any) -> None:
    p = sub.add_parser("keygen", help="create CURVE keys for a remote worker",
                       description="Create a worker key pair and one client key pair in DIR "
                       "and authorize that client (see alaas_lab/security.py). Set the config's "
                       "al_worker.curve_dir to DIR.")
    p.add_argument("dir")
    p.add_argument("--client", default="client", help="name of the client key pair")
    p.set_defaults(func=run_keygen)


def run_keygen(args: argparse.Namespace) -> int:
    from .security import generate_keys

    root = generate_keys(args.dir, client=args.client)
    print(f"CURVE keys in {root}: give clients server.key and their {args.client}.key_secret; "
          f"authorized clients: {root / 'authorized'}")
    return 0


# ------------------------------------------------------------------------ demo
def _add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate active learning on digits/MNIST and compare strategies",
        description=(
            "Simulated active-learning sessions (the oracle knows every label): round 0 "
            "labels a random seed set, each later round lets a strategy pick --budget more, "
            "the last-layer head is refitted and scored on held-out items. Prints mean "
            "top-1 accuracy (and std over seeds) per round and strategy."
        ),
    )
    p.add_argument(
        "--strategies",
        default=DEFAULT_STRATEGIES,
        help=f"comma-separated strategy names (default: {DEFAULT_STRATEGIES})",
    )
    p.add_argument("--rounds", type=int, default=8, help="rounds after the seed set (default: 8)")
    p.add_argument("--budget", type=int, default=20, help="labels per round (default: 20)")
    p.add_argument("--initial", type=int, default=20, help="random seed set size (default: 20)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 to average (default: 3)")
    p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    p.add_argument(
        "--mnist-path",
        default=None,
        help=(
            "folder with the MNIST IDX files (default: $ALAAS_LAB_MNIST_DIR, else the "
            "user's cache, downloading once; $ALAAS_DATA_MIRROR sets a mirror)"
        ),
    )
    p.add_argument("--pool", type=int, default=5000, help="MNIST: training images used as the pool")
    p.add_argument("--test", type=int, default=2000, help="MNIST: test images scored")
    p.add_argument(
        "--backbone",
        choices=("flatten", "resnet18"),
        default="flatten",
        help="embeddings: raw pixels (default) or resnet18 features",
    )
    p.add_argument("--weights", default=None, help="resnet18: state_dict file")
    p.add_argument(
        "--backbone-init",
        choices=("pretrained", "train", "random"),
        default="pretrained",
        help=(
            "resnet18: 'pretrained' needs weights (--weights, $ALAAS_LAB_RESNET18_WEIGHTS or "
            "torchvision's cache); 'train' trains it on --backbone-train-size random pool "
            "items first; 'random' is for tests"
        ),
    )
    p.add_argument("--backbone-train-size", type=int, default=300)
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """The ``demo`` subcommand."""
    from . import strategies
    from .learner import simulate

    out = sys.stdout if out is None else out
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not names:
        raise InputError("--strategies is empty; give e.g. --strategies random,least_confidence.")
    known = strategies.names()
    unknown = [s for s in names if s not in known]
    if unknown:
        raise InputError(f"--strategies: unknown {unknown}; choose from {sorted(known)}.")
    for flag in ("rounds", "budget", "initial", "seeds"):
        minimum = 0 if flag == "rounds" else 1
        if getattr(args, flag) < minimum:
            raise InputError(f"--{flag} must be >= {minimum}; got {getattr(args, flag)}.")

    t0 = time.perf_counter()
    X, y, X_test, y_test, described = _demo_data(args)
    seeds = list(range(args.seeds))
    acc: dict[str, np.ndarray] = {}
    n_labeled: np.ndarray | None = None
    n_pool = n_test = 0
    for name in names:
        rows = []
        for seed in seeds:
            res = simulate(
                X,
                y,
                X_test=X_test,
                y_test=y_test,
                strategy=name,
                rounds=args.rounds,
                budget_per_round=args.budget,
                initial_labeled=args.initial,
                seed=seed,
                head_params={"threads": args.threads},
            )
            logging.getLogger(__name__).info("%s seed %d: %s", name, seed, res.accuracies)
            rows.append(res.accuracies)
            n_labeled, n_pool, n_test = res.n_labeled, res.n_pool, res.n_test
        acc[name] = np.array(rows)
    assert n_labeled is not None
    elapsed = time.perf_counter() - t0

    pm = _plus_minus(out)
    print(
        f"alaas-lab demo: {described}; {n_pool} pool items, {n_test} test items",
        file=out,
    )
    print(
        f"{len(seeds)} seed(s); round 0 labels {args.initial} random items, then "
        f"{args.rounds} round(s) x {args.budget}; top-1 accuracy % (mean {pm} std over seeds)",
        file=out,
    )
    print(file=out)
    print(format_table(n_labeled, acc, pm=pm), file=out)
    print(file=out)
    print(verdict(n_labeled, acc), file=out)
    print(f"({elapsed:.1f} s)", file=out)
    return 0


def _demo_data(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, str]:
    """Embeddings and labels for the demo: (X, y, X_test, y_test, description)."""
    from . import datasets, models

    if args.dataset == "digits":
        data = datasets.digits()
        test = None
    else:
        path = args.mnist_path  # None: the cache, else a download (datasets.mnist)
        data = datasets.mnist(path, split="train", limit=args.pool)
        test = datasets.mnist(path, split="test", limit=args.test)
    if args.backbone == "flatten":
        bb: Any = models.backbone("flatten")
        X = bb.embed_items(data.X)
        X_test = None if test is None else bb.embed_items(test.X)
    else:
        kw: dict[str, Any] = {"threads": args.threads, "init": args.backbone_init}
        if args.backbone_init == "train":
            rng = np.random.default_rng(12345)
            n = min(args.backbone_train_size, len(data))
            idx = rng.choice(len(data), n, replace=False)
            kw.update(train_images=data.images[idx], train_labels=data.y[idx])
        if args.weights:
            kw["weights"] = args.weights
        try:
            bb = models.backbone("resnet18", **kw)
        except ModelError as exc:
            raise ModelError(
                f"{exc}\nOn the command line: --weights FILE, or --backbone-init train."
            ) from exc
        X = bb.embed_items(data.images)
        X_test = None if test is None else bb.embed_items(test.images)
    described = f"{data.name} ({len(data)} images {'x'.join(map(str, data.images.shape[1:]))})"
    described += f", embeddings: {bb.describe()['summary']}"
    return X, data.y, X_test, (None if test is None else test.y), described


def _plus_minus(out: TextIO) -> str:
    enc = getattr(out, "encoding", None) or "utf-8"
    try:
        "±".encode(enc)
    except (UnicodeEncodeError, LookupError):
        return "+-"
    return "±"


def format_table(n_labeled: np.ndarray, acc: dict[str, np.ndarray], *, pm: str = "±") -> str:
    """Rows = rounds, columns = mean top-1 % (± std) per strategy.

    Parameters
    ----------
    n_labeled : ndarray of shape (rounds + 1,)
    acc : dict
        strategy -> ndarray of shape (n_seeds, rounds + 1), fractions.
    """
    cells = {
        s: [f"{100 * m:.1f} {pm} {100 * sd:.1f}" for m, sd in zip(a.mean(0), a.std(0), strict=True)]
        for s, a in acc.items()
    }
    widths = {s: max(len(s), *(len(c) for c in col)) for s, col in cells.items()}
    header = f"{'round':>5}  {'labeled':>7}  " + "  ".join(f"{s:>{widths[s]}}" for s in acc)
    lines = [header, "-" * len(header)]
    for r, n in enumerate(n_labeled):
        row = "  ".join(f"{cells[s][r]:>{widths[s]}}" for s in acc)
        lines.append(f"{r:>5}  {int(n):>7}  {row}")
    return "\n".join(lines)


def verdict(n_labeled: np.ndarray, acc: dict[str, np.ndarray]) -> str:
    """One line naming the strategy ahead after the last round (mean over seeds)."""
    final = {s: float(a.mean(0)[-1]) for s, a in acc.items()}
    ranked = sorted(final, key=lambda s: -final[s])
    best = ranked[0]
    line = f"ahead at {int(n_labeled[-1])} labels: {best} ({100 * final[best]:.1f}% top-1"
    if len(ranked) > 1:
        other = "random" if "random" in final and best != "random" else ranked[1]
        gap = 100 * (final[best] - final[other])
        line += f", {gap:+.1f} points over {other} at {100 * final[other]:.1f}%"
    mean_curve = {s: float(a.mean()) for s, a in acc.items()}
    auc_best = max(mean_curve, key=lambda s: mean_curve[s])
    line += f"); best mean over all rounds: {auc_best} ({100 * mean_curve[auc_best]:.1f}%)"
    return line


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
