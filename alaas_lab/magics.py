"""IPython magics: ``%load_ext alaas_lab`` registers ``%alaas``.

The magic is a thin shell over :class:`alaas_lab.Lab`; one Lab per kernel is
kept here (:func:`current_lab`) so cells can say ``%alaas label`` after
``%alaas start config.yml``.
"""

from __future__ import annotations

import argparse
import re
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

from .errors import AlaasError

__all__ = ["AlaasMagics", "current_lab", "load_ipython_extension", "unload_ipython_extension"]

_LAB: Any = None  # the Lab that %alaas drives in this kernel
_COMMENT = re.compile(r"(^|\s)#.*$")  # "%alaas push x  # why": the comment is not an argument


def current_lab() -> Any:
    """The :class:`~alaas_lab.Lab` that ``%alaas start`` made in this kernel, or None."""
    return _LAB


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # never sys.exit inside a kernel
        raise UsageError(f"%alaas {self.prog.split()[-1]}: {message}\n{self.format_usage()}")


def _parser(cmd: str, *args: tuple[tuple[str, ...], dict[str, Any]]) -> _Parser:
    p = _Parser(prog=f"%alaas {cmd}", add_help=False)
    for names, kwargs in args:
        p.add_argument(*names, **kwargs)
    return p


def _grid_size(text: str) -> int:
    """``--grid N``: a whole number (the widget checks its range)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"thumbnails per page must be a whole number such as 24; got {text!r}") from None


_PARSERS = {
    "start": _parser("start", (("config",), {"nargs": "?"}),
                     (("--session",), {"default": None}),
                     (("--backbone",), {"default": None, "metavar": "VAR"}),
                     (("--preprocess",), {"default": None, "metavar": "VAR"}),
                     (("--input-shape",), {"default": None, "dest": "input_shape"})),
    "push": _parser("push", (("source",), {}), (("--eval",), {"default": None,
                                                                 "metavar": "LABELS"}),
                    (("--async",), {"action": "store_true", "dest": "asynchronous"})),
    "label": _parser("label", (("n",), {"nargs": "?", "type": int}),
                     (("--keys",), {"default": None}), (("--labeler",), {"default": None}),
                     (("--grid",), {"default": None, "type": _grid_size, "metavar": "N"}),
                     (("--review",), {"action": "store_true"})),
    "dashboard": _parser("dashboard"),
    "monitor": _parser("monitor"),
    "map": _parser("map", (("--color",), {"default": "class",
                                          "choices": ["class", "uncertainty", "state",
                                                      "strategy", "suspect"]})),
    "status": _parser("status"),
    "export": _parser("export", (("path",), {}),
                      (("--history",), {"action": "store_true"}),
                      (("--all",), {"action": "store_true", "dest": "include_eval"})),
    "stop": _parser("stop", (("--kill",), {"action": "store_true"})),
}
#: Commands of the cell magic ``%%alaas``: the cell is their body.
_CELL_PARSERS = {
    "strategy": _parser("strategy", (("name",), {}),
                        (("--needs",), {"default": "probs"}),
                        (("--fn",), {"default": None})),
}


@magics_class
class AlaasMagics(Magics):
    """The ``%alaas`` line magic and the ``%%alaas`` cell magic."""

    @line_cell_magic
    def alaas(self, line: str, cell: str | None = None) -> Any:
        """Drive an alaas_lab active-learning session from the notebook.

        Usage::

            %alaas start [config.yml] [--session DIR] [--backbone VAR --input-shape 8,8
                         [--preprocess VAR]]
                Start this session's worker, or attach to it if SESSION_DIR/worker.json
                names a live one (after a kernel restart, run the same line again). A
                worker started on an existing session resumes it from its journal.
                Without a config: the session in --session DIR (its saved config.yml),
                or the one already started in this kernel. --backbone VAR: the
                torch.nn.Module in VAR embeds the items; it is exported (TorchScript,
                traced on items of --input-shape, after the optional --preprocess
                module) into the session directory, and the worker loads that file.
            %alaas push <uri | glob | variable> [--eval LABELS] [--async]
                Add items to the pool: a URI or glob (file, s3://, http://...), or the
                name of a variable holding an array of items (n, ...) or a list of URIs.
                --eval LABELS: the items are the evaluation set, LABELS a variable
                with one label per item. --async: return at once (see %alaas monitor).
            %alaas label [n] [--keys KEYS] [--labeler NAME] [--grid N] [--review]
                Show the labeling widget: n items per selection (default: the config's
                budget.per_round). Classes named by one digit or letter each answer to
                their own key ("3" labels class "3"); other classes to 1-9, 0, then A-Z
                in order (--keys KEYS: one key per class). Space skips, Backspace
                takes back one of the last 10 answers. --grid N: pages of N
                thumbnails (1-64) grouped by predicted class, each proposed the
                model's class; click or arrow to one and press a class key to change
                it, Enter confirms the page (one label per item). --review: review
                the suspect labels first (Enter keeps a label, a class key corrects
                it, journaled with who and when); not with --grid.
            %alaas dashboard
                Accuracy per strategy and round, forecasts and eliminations (PSHEA),
                budget spent; live.
            %alaas monitor
                The pipeline: per-stage progress and throughput, cache hit rate,
                quarantined items with reasons.
            %alaas map [--color class|uncertainty|state|strategy|suspect]
                The pool map: every embedded item in 2-D (t-SNE), live. Hover shows
                an item; a lasso selection can be sent to the labeler as a queue.
            %alaas status
                Pool, labels, budget and rounds as text.
            %alaas export labels.csv [--history] [--all]
                Write every label with its item URI, labeler, time, round and
                strategy (.csv, .jsonl, or .parquet with pyarrow). --history: every
                change and retraction too; --all: the evaluation set's labels too.
            %alaas stop [--kill]
                Stop the worker (--kill: at once; the journal keeps every label).
            %%alaas strategy NAME [--needs probs,embeddings] [--fn FUNC]
                (a cell magic) The cell defines a strategy function
                fn(k, *, probs, embeddings, labeled, rng) -> indices: the function
                named NAME, --fn FUNC, or the cell's only function. It is saved as
                SESSION_DIR/plugins/NAME.py with its register call, checked here, and
                the worker is restarted to import it (its journal keeps the session);
                then strategy NAME can be queried (lab.query(k, strategy=NAME)).
                --needs: its inputs, from probs, mc_probs, embeddings.

        In Python the same is ``alaas_lab.Lab(config).start()``, then ``.push``,
        ``.label``, ``.dashboard``, ``.monitor``, ``.status``, ``.export``,
        ``.labels`` and ``.stop``; ``alaas_lab.magics.current_lab()`` is the Lab
        that ``%alaas`` drives.
        """
        line = _COMMENT.sub("", line)
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%alaas: {exc}") from None
        if cell is not None:
            return self._cell(argv, cell)
        if not argv:
            raise UsageError("%alaas needs a command: " + ", ".join(_PARSERS)
                             + " (see %alaas?)")
        cmd, rest = argv[0], argv[1:]
        if cmd not in _PARSERS:
            raise UsageError(f"%alaas: unknown command {cmd!r}; the commands are "
                             + ", ".join(_PARSERS) + " (see %alaas?)")
        args = _PARSERS[cmd].parse_args(rest)
        try:
            return getattr(self, f"_{cmd}")(args)
        except AlaasError as exc:
            raise UsageError(f"%alaas {cmd}: {exc}") from None

    def _cell(self, argv: list[str], cell: str) -> Any:
        if not argv or argv[0] not in _CELL_PARSERS:
            raise UsageError("%%alaas needs a cell command: " + ", ".join(_CELL_PARSERS)
                             + " (e.g. %%alaas strategy NAME; see %alaas?)")
        args = _CELL_PARSERS[argv[0]].parse_args(argv[1:])
        try:
            return getattr(self, f"_cell_{argv[0]}")(args, cell)
        except AlaasError as exc:
            raise UsageError(f"%%alaas {argv[0]}: {exc}") from None

    def _cell_strategy(self, args: argparse.Namespace, cell: str) -> None:
        """Save the cell as SESSION_DIR/plugins/NAME.py, check it here, restart the worker.

        Restarting (rather than a ``load_plugin`` request) keeps one way in for
        plugins, the worker's start, where the config's plugins are imported too;
        a re-run cell replaces the old function in a fresh process, and the
        journal resumes the session as it was.
        """
        from .plugins import write_strategy_plugin

        lab = self._lab()
        path = write_strategy_plugin(lab.session_dir, args.name, cell,
                                     needs=args.needs, fn=args.fn)
        lab.stop()
        lab.start()
        print(f"alaas_lab: strategy {args.name!r} saved to {path} and loaded by the worker "
              f"(pid {lab.status().get('pid')}); query it with "
              f"current_lab().query(k, strategy={args.name!r}).")

    # ------------------------------------------------------------ commands
    def _lab(self) -> Any:
        if _LAB is None:
            raise UsageError("no session yet: run %alaas start config.yml first.")
        return _LAB

    def _start(self, args: argparse.Namespace) -> None:
        global _LAB
        from .lab import Lab

        backbone = {}
        if args.backbone is not None:
            module = self._resolve(args.backbone)
            if isinstance(module, str):
                raise UsageError(f"%alaas start --backbone: {args.backbone!r} is not a variable "
                                 "of this notebook; give the name of a torch.nn.Module.")
            if args.input_shape is None:
                raise UsageError("%alaas start --backbone needs --input-shape, the shape of "
                                 "one item, e.g. --input-shape 8,8.")
            try:
                shape = tuple(int(s) for s in args.input_shape.split(","))
            except ValueError:
                raise UsageError(f"%alaas start --input-shape: {args.input_shape!r} is not a "
                                 "list of integers such as 8,8.") from None
            backbone = {"backbone": module, "input_shape": shape,
                        "preprocess": self._resolve(args.preprocess)}
        elif args.preprocess is not None or args.input_shape is not None:
            raise UsageError("%alaas start: --preprocess and --input-shape go with --backbone.")
        if args.config is None and args.session is None and not backbone:
            lab = self._lab()
        else:
            if args.config is None and args.session is None:
                args.session = str(self._lab().session_dir)
            lab = Lab(args.config, args.session, **backbone)
            if (_LAB is not None and _LAB.session_dir == lab.session_dir
                    and _LAB.config == lab.config):
                lab = _LAB  # the same session and config: keep its client and widgets
        lab.start()
        _LAB = lab
        s = lab.status()
        verb = {"attached": "attached to the running worker",
                "restarted": "started a worker on the existing session (resumed from its "
                             "journal)",
                "started": "started a new session"}.get(lab.how or "", "connected")
        print(f"alaas_lab {lab.config.name}: {verb}, pid {s.get('pid')}; "
              f"{s.get('n_items', 0)} items, {s.get('n_labeled', 0)} labels, "
              f"round {s.get('round', 0)}. Session: {lab.session_dir}")

    def _resolve(self, token: str | None) -> Any:
        if token is None:
            return None
        ns = self.shell.user_ns if self.shell is not None else {}
        if token.isidentifier() and token in ns:
            return ns[token]
        return token

    def _push(self, args: argparse.Namespace) -> None:
        lab = self._lab()
        data = self._resolve(args.source)
        labels = None
        if args.eval is not None:
            labels = self._resolve(args.eval)
            if isinstance(labels, str):
                raise UsageError(f"%alaas push --eval: {args.eval!r} is not a variable of this "
                                 "notebook; give the name of a list or array of labels.")
            labels = list(labels)
        reply = lab.push(data, role="eval" if labels is not None else "pool", labels=labels,
                         wait=not args.asynchronous)
        if args.asynchronous:
            print("alaas_lab: push started; %alaas monitor shows its progress.")
            return
        what = "evaluation set" if labels is not None else "pool"
        n = len(reply.get("item_ids", []))
        print(f"alaas_lab: pushed {n} item{'s' if n != 1 else ''} to the {what} "
              f"({reply.get('cache_hits', 0)} from the cache, {reply.get('embedded', 0)} "
              f"embedded, {len(reply.get('quarantined') or [])} quarantined) in "
              f"{reply.get('seconds', 0):.1f} s; the pool now holds {reply.get('n_items')} items.")

    def _label(self, args: argparse.Namespace) -> None:
        display(self._lab().label(args.n, keys=args.keys, labeler=args.labeler,
                                  grid=args.grid, review=args.review))

    def _dashboard(self, args: argparse.Namespace) -> None:
        display(self._lab().dashboard())

    def _monitor(self, args: argparse.Namespace) -> None:
        display(self._lab().monitor())

    def _map(self, args: argparse.Namespace) -> None:
        display(self._lab().map(color_by=args.color))

    def _status(self, args: argparse.Namespace) -> None:
        print(self._lab().describe())

    def _export(self, args: argparse.Namespace) -> None:
        lab = self._lab()
        path = lab.export(args.path, history=args.history, include_eval=args.include_eval)
        n = len(lab.labels(history=args.history, include_eval=args.include_eval))
        print(f"alaas_lab: wrote {n} label{'s' if n != 1 else ''} to {path}")

    def _stop(self, args: argparse.Namespace) -> None:
        global _LAB
        lab = self._lab()
        lab.kill() if args.kill else lab.stop()
        print(f"alaas_lab {lab.config.name}: worker {'killed' if args.kill else 'stopped'}; "
              f"the session stays in {lab.session_dir} (%alaas start resumes it).")
        _LAB = None


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext alaas_lab``: register ``%alaas``."""
    ipython.register_magics(AlaasMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext alaas_lab``: close the widgets' threads; the worker keeps running."""
    if _LAB is not None:
        _LAB.close_widgets("the alaas_lab extension was unloaded")
