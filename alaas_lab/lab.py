"""``Lab``: a labeling session from a notebook, in Python (what ``%alaas`` calls).

>>> lab = Lab("examples/digits_least_confidence.yml").start()   # doctest: +SKIP
>>> lab.push(images)                      # arrays, URIs or globs            # doctest: +SKIP
>>> lab.label()                           # the labeling widget              # doctest: +SKIP
>>> lab.dashboard(); lab.monitor()                                           # doctest: +SKIP
>>> lab.export("labels.csv")                                                 # doctest: +SKIP

``start`` attaches to the session's worker when ``SESSION_DIR/worker.json``
points at one that answers, and otherwise starts one; a worker started on a
session directory resumes it from the journal. So after a kernel restart the
same ``start`` call finds the session as it was, and the widgets load its
history (labels, rounds, forecasts) when they are made. The kernel reads that
history, and the labels it exports, from the worker (``history`` requests),
never from the session directory's files, so the worker may run elsewhere.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .client import Client, WorkerUnavailable
from .config import Config, config_diff, load_config
from .errors import AlaasError
from .plugins import load_session_plugins
from .protocol.messages import LabelRow
from .server import Server, session_path
from .widgets import Dashboard, LabelingWidget, PipelineMonitor
from .widgets._base import budget_total

__all__ = ["LABEL_COLUMNS", "Lab"]

#: Columns of :meth:`Lab.labels` and :meth:`Lab.export`.
LABEL_COLUMNS = tuple(LabelRow.__annotations__)
#: Label rows per ``history`` request when reading them all.
_PAGE = 20_000


def _is_worker_process(pid: int) -> bool:
    """Whether ``pid`` runs ``python -m alaas_lab.worker`` (Linux; True where unknown)."""
    if not Path("/proc/self").exists():
        return True
    try:
        return b"alaas_lab.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _export_backbone(config: Any, session_dir: Any, module: Any, input_shape: Any,
                     preprocess: Any) -> tuple[Config, Path]:
    """Export ``module`` into the session directory; the config with it as the model.

    The file is named by its sha256, so a changed module gives another file (and
    another config), never new bytes under a running worker's feet; the same
    module (same weights, same outputs) exported again reuses its file.
    """
    from .cache import file_sha256
    from .models.torchscript import export_module, reuse_export

    if input_shape is None:
        raise AlaasError("backbone= needs input_shape=, the shape of one item (e.g. (8, 8)): "
                         "the module is traced on a batch of that shape.")
    cfg = load_config(config)
    where = session_path(cfg, session_dir)
    tmp = export_module(module, where / ".backbone.pt.tmp", input_shape=input_shape,
                        preprocess=preprocess)
    same = reuse_export(tmp, where)  # this module exported before (another kernel)
    if same is not None:
        tmp.unlink()
        final, digest = same, file_sha256(same)
    else:
        digest = file_sha256(tmp)
        final = where / f"backbone-{digest[:16]}.pt"
        os.replace(tmp, final)
    raw = cfg.to_dict()
    model = raw["active_learning"]["model"]
    model.update(name="torchscript", weights=str(final))
    if "sha256" in model:
        model["sha256"] = digest
    return load_config(raw), where


class Lab:
    """One active-learning session, driven from a notebook.

    Parameters
    ----------
    config : path, dict or Config, optional
        The session's YAML config (or its content). Default: the ``config.yml``
        that a worker wrote into ``session_dir`` when it started.
    session_dir : path, optional
        Default: the config's ``session_dir``, else ``./alaas_sessions/<name>``.
    labeler : str, optional
        Name stored with every label given through :meth:`label` (default: login name).
    backbone : torch.nn.Module, optional
        A model of this notebook that embeds the items: it is exported (TorchScript,
        traced on zeros of ``(2, *input_shape)``) to ``SESSION_DIR/backbone-<sha>.pt``
        and the config's ``active_learning.model`` becomes ``{name: torchscript,
        weights: that file}``; the worker loads it without this notebook's code, and
        the embedding cache keys on the file's sha256.
    input_shape : sequence of int
        The shape of one item, e.g. ``(8, 8)``; required with ``backbone``.
    preprocess : torch.nn.Module or function of tensors, optional
        Run on each batch before ``backbone``, inside the exported graph.
    """

    def __init__(self, config: str | os.PathLike[str] | dict[str, Any] | Config | None = None,
                 session_dir: str | os.PathLike[str] | None = None, *,
                 labeler: str | None = None, backbone: Any = None,
                 input_shape: Sequence[int] | None = None, preprocess: Any = None) -> None:
        if session_dir is not None:
            # what %%alaas strategy saved there: the kernel checks names as the worker will
            load_session_plugins(session_dir)
        if backbone is None and (input_shape is not None or preprocess is not None):
            raise AlaasError("input_shape and preprocess go with backbone=: pass the module "
                             "too, or leave them out.")
        if config is None:
            if session_dir is None:
                raise AlaasError("Lab needs a config (a YAML path, dict or Config) or the "
                                 "session_dir of an existing session.")
            config = Path(session_dir) / "config.yml"
            if not config.is_file():
                raise AlaasError(f"{session_dir} holds no config.yml (no worker ever started "
                                 "there); give the config.")
        if backbone is not None:
            config, session_dir = _export_backbone(config, session_dir, backbone,
                                                   input_shape, preprocess)
        if isinstance(config, (str, os.PathLike)):
            self.server = Server(config_path=config, session_dir=session_dir)
        else:
            self.server = Server(config=config, session_dir=session_dir)
        self.config: Config = self.server.config
        self.session_dir: Path = self.server.session_dir
        self.labeler = labeler
        self.how: str | None = None  # "attached", "started" or "restarted"
        self._client: Client | None = None
        self._labeler: LabelingWidget | None = None
        self._widgets: list[Any] = []

    def __repr__(self) -> str:
        state = self.how or "not started"
        return f"Lab({self.config.name!r}, session_dir={str(self.session_dir)!r}, {state})"

    # ------------------------------------------------------------ worker
    @property
    def client(self) -> Client:
        """The notebook's client of the worker (after :meth:`start`)."""
        if self._client is None:
            raise AlaasError("the session is not started: call lab.start() (or %alaas start).")
        return self._client

    @property
    def connection_file(self) -> Path:
        return self.server.connection_file

    def start(self, *, timeout: float = 120.0) -> Lab:
        """Attach to this session's worker, or start one (which resumes from the journal).

        Sets :attr:`how` to ``"attached"``, ``"restarted"`` (a worker started on an
        existing journal) or ``"started"`` (a new session).
        """
        if self._client is not None:
            try:
                if self.server.is_alive():  # an idled-out worker: start again at once
                    self._client.hello()
                    return self
            except WorkerUnavailable:
                pass
            self._client.close()
            self._client = None
        srv = self.server
        if srv.is_alive():
            client = srv.client(timeout=10.0)
            try:
                hello = client.hello()
            except WorkerUnavailable:
                hello = None
            if hello is not None:
                self._check_same_config(hello, client)
                self._client, self.how = client, "attached"
                return self
            client.close()
            pid = srv.pid()
            if pid is not None and _is_worker_process(pid):
                raise AlaasError(
                    f"the worker of {self.session_dir} (pid {pid}) is running but does not "
                    "answer; wait for it, or end it with lab.kill() (%alaas stop --kill) "
                    "and start again.")
            srv.connection_file.unlink(missing_ok=True)  # a stale file: the pid was reused
        srv.start(timeout=timeout)
        self._client = srv.client()
        hello = self._client.hello()
        self.how = "restarted" if hello.get("resumed") else "started"
        return self

    def _check_same_config(self, hello: dict[str, Any], client: Client) -> None:
        """Refuse to attach to a worker that runs another config than this Lab's."""
        theirs = hello.get("config")
        if theirs is None:
            return
        differs = config_diff(self.config.to_dict(), theirs)
        if differs:
            client.close()
            shown = "; ".join(differs[:3]) + (f"; and {len(differs) - 3} more"
                                              if len(differs) > 3 else "")
            raise AlaasError(
                f"the worker serving {self.session_dir} (pid {hello.get('pid')}) runs another "
                f"config ({shown}). Attach with its config: Lab(session_dir="
                f"{str(self.session_dir)!r}); or stop it (Lab(session_dir=...).stop(), "
                "%alaas stop) and start again to apply yours: its labels are kept.")

    def stop(self) -> None:
        """Stop the widgets (their answers are sent first), then the worker."""
        self.close_widgets("the worker was stopped; %alaas start resumes the session")
        if self._client is not None:
            self._client.close()
            self._client = None
        self.server.stop()
        self.how = None

    def kill(self) -> None:
        """End the worker at once (SIGKILL); the journal keeps every acknowledged label."""
        self.close_widgets("the worker was killed; %alaas start resumes the session")
        self.server.kill()
        self.how = None

    def close_widgets(self, reason: str = "stopped") -> None:
        """Stop every widget this Lab made (answers given are sent first); views stay."""
        for widget in self._widgets:
            widget.shutdown(reason)
        self._widgets.clear()
        self._labeler = None

    def is_alive(self) -> bool:
        return self.server.is_alive()

    # ------------------------------------------------------------ data
    def push(self, data: Any, *, role: str = "pool", labels: Sequence[Any] | None = None,
             wait: bool = True) -> dict[str, Any]:
        """Add items to the pool (or, with ``role="eval"`` and ``labels``, the evaluation set).

        Parameters
        ----------
        data : array-like, DataFrame, list of arrays or PIL images, str, path, or list of str
            Rows (e.g. images ``(n, h, w)``), URIs and globs (file, s3, http...), or in a
            text session raw texts. Anything else is refused before an item is added.
        wait : bool, default True
            Wait for the pipeline to embed everything; ``False`` returns at once
            (watch :meth:`monitor`).

        Returns
        -------
        summary : dict
            The worker's reply: ``item_ids``, ``n_items``, ``cache_hits``, ``embedded``...
        """
        return self.client.push_data(data, asynchronous=not wait, role=role, labels=labels)

    def status(self) -> dict[str, Any]:
        """The worker's status: pool, labels, round, budget, rounds so far."""
        return self.client.status()

    def describe(self) -> str:
        """:meth:`status` as a few lines of text."""
        return format_status(self.status(), self)

    # ------------------------------------------------------------ widgets
    def _widget_args(self) -> dict[str, Any]:
        self.client  # noqa: B018 - raises when not started
        return {"connection_file": self.connection_file}

    def label(self, n: int | None = None, *, keys: Sequence[str] | str | None = None,
              labeler: str | None = None, prefetch: int = 4,
              grid: int | None = None, review: bool = False) -> LabelingWidget:
        """The labeling widget; ``n`` items per selection (default ``budget.per_round``).

        ``review=True``: open on the review of the suspect labels (see :meth:`suspects`),
        most likely mistake first, each with its label and the out-of-fold head's
        class: Enter keeps the label (journaled as confirmed), a class key corrects it
        (journaled with who and when), Space leaves it, Backspace undoes. "Back to
        labeling" goes on with new items; in label mode a "Review N suspects" button
        opens the review. Not with ``grid``.

        ``grid=24``: pages of 24 thumbnails grouped by the model's predicted class,
        each proposed its suggestion; Enter confirms a page (one label per item). In
        synchronous rounds a page holds at most the round's remaining items: give
        ``n >= grid`` for full pages.

        One labeling widget is live per Lab: making a new one stops the previous one
        (after its answers are sent).
        """
        args = self._widget_args()
        budget = self.config.budget
        widget = LabelingWidget(**args, n=budget.per_round if n is None else n,
                                budget_total=budget.total or None, round_budget=budget.per_round,
                                keys=keys, labeler=labeler or self.labeler, prefetch=prefetch,
                                grid=grid, review=review, start=False)
        # only a widget that was made (arguments accepted) replaces the previous one
        if self._labeler is not None:
            self._labeler.shutdown("a newer labeling widget took over")
            if self._labeler in self._widgets:
                self._widgets.remove(self._labeler)
        widget.start()
        self._labeler = widget
        self._widgets.append(widget)
        return widget

    def dashboard(self, *, poll: float = 2.0) -> Dashboard:
        """Accuracy per strategy and round, forecasts, eliminations and budget, live."""
        widget = Dashboard(**self._widget_args(), target=self.config.target_accuracy,
                           budget_total=self.config.budget.total or None, poll=poll)
        self._widgets.append(widget)
        return widget

    def monitor(self) -> PipelineMonitor:
        """Per-stage progress and throughput, cache hit rate, quarantined items."""
        widget = PipelineMonitor(**self._widget_args())
        self._widgets.append(widget)
        return widget

    def map(self, *, color_by: str = "class", poll: float = 5.0) -> Any:
        """The pool map: every embedded item in 2-D (t-SNE), coloured by ``color_by``
        (``class``, ``uncertainty``, ``state``, ``strategy``, ``suspect``); hover shows an
        item, a lasso selection can be sent to the labeler as a queue."""
        from .widgets.pool_map import PoolMap

        widget = PoolMap(**self._widget_args(), labeler=self.labeler, poll=poll,
                         color_by=color_by)
        self._widgets.append(widget)
        return widget

    # ------------------------------------------------------------ suspect labels
    def suspects(self, *, refresh: bool = False, wait: bool = True, limit: int | None = None
                 ) -> Any:
        """Labels that are likely mistakes (confident learning on out-of-fold predictions
        of the head), most likely first: a DataFrame (a list of dicts without pandas) with
        ``item_id``, ``uri``, ``label``, ``suggested``, ``self_confidence``, ``rank``.

        The worker scores the labels after each round; ``refresh=True`` scores them now.
        Review each with :meth:`relabel`.
        """
        reply = self.client.suspects(refresh=refresh, wait=wait, limit=limit)
        rows = reply["items"]
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows, columns=["item_id", "uri", "label", "suggested",
                                           "self_confidence", "rank"])

    def relabel(self, item: int, label: Any, *, labeler: str | None = None) -> dict[str, Any]:
        """Review one label: the same label confirms it, another corrects it; both are
        journaled with who and when (``kind``: ``confirmed`` or ``corrected``)."""
        return self.client.relabel(item, label, labeler=labeler or self.labeler)

    # ------------------------------------------------------------ labels out
    def _label_rows(self, history: bool, include_eval: bool) -> list[dict[str, Any]]:
        """Every label row from the worker (``history`` requests, a page at a time)."""
        rows: list[dict[str, Any]] = []
        cursor: int | str = 0
        while True:
            reply = self.client.history(cursor, ["labels"], _PAGE, current=not history,
                                        include_eval=include_eval)
            rows += reply["labels"]
            cursor = reply["cursor"]
            if not reply["more"]:
                return rows

    def labels(self, *, history: bool = False, include_eval: bool = False) -> Any:
        """Every current label: a pandas DataFrame (a list of dicts without pandas).

        Columns: ``item_id``, ``uri``, ``label``, ``labeler``, ``time`` (ISO 8601,
        UTC), ``round`` and ``strategy`` (the selection that asked for the item),
        ``row_id`` (the journal row), ``model_round`` and ``model_n_labeled`` (the
        head that chose the item: the last round recorded before the selection, and
        its label count; None for random picks). ``history=True`` gives every journal
        row, changed answers and retractions (``label`` None) included;
        ``include_eval=True`` adds the evaluation set's labels. The worker reads its
        journal and sends the rows (``history`` requests): this works from any host.
        """
        rows = self._label_rows(history, include_eval)
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows, columns=list(LABEL_COLUMNS))

    def export(self, path: str | os.PathLike[str], *, history: bool = False,
               include_eval: bool = False) -> Path:
        """Write :meth:`labels` to ``path``: ``.csv``, ``.jsonl`` or ``.parquet`` (pyarrow).

        Returns the path written. The file is replaced atomically.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".jsonl", ".parquet"):
            raise AlaasError(f"cannot export to {path.name!r}: the file name must end in .csv, "
                             ".jsonl or .parquet.")
        rows = self._label_rows(history, include_eval)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        columns = list(LABEL_COLUMNS)
        if suffix == ".csv":
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
        elif suffix == ".jsonl":
            with open(tmp, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
        else:
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError:
                raise AlaasError("exporting .parquet needs pyarrow: pip install pyarrow "
                                 "(or export .csv / .jsonl).") from None
            labels = [None if r["label"] is None else str(r["label"]) for r in rows]
            table = pa.table({c: [r[c] for r in rows] if c != "label" else labels
                              for c in columns})
            pq.write_table(table, tmp)
        os.replace(tmp, path)
        return path


def format_status(status: dict[str, Any], lab: Lab | None = None) -> str:
    """A short text report of a worker's status."""
    where = f" ({lab.session_dir})" if lab is not None else ""
    name = lab.config.name if lab is not None else status.get("name", "")
    lines = [f"alaas_lab session {name}{where}: worker pid {status.get('pid')}, "
             f"{status.get('state')}"]
    n_items, n_eval = status.get("n_items", 0), status.get("n_eval", 0)
    lines.append(f"  pool: {n_items - n_eval} items, evaluation set: {n_eval} "
                 f"({status.get('n_embedded', 0)} of the {n_items} embedded, "
                 f"{status.get('n_quarantined', 0)} quarantined)")
    total = budget_total(status)
    labeled = status.get("n_labeled", 0)
    budget = "" if total is None else f" of {total}"
    lines.append(f"  labels: {labeled}{budget}, {status.get('n_pending', 0)} waiting; "
                 f"round {status.get('round', 0)}; strategies: "
                 f"{', '.join(status.get('strategies') or []) or '-'}"
                 + (f" (eliminated: {', '.join(status['eliminated'])})"
                    if status.get("eliminated") else ""))
    for r in status.get("rounds") or []:
        top1 = "-" if r.get("top1") is None else f"{r['top1']:.3f}"
        lines.append(f"  round {r['round']:>3}  {r['strategy']:<20} top-1 {top1}  "
                     f"({r['n_labeled']} labels)")
    return "\n".join(lines)
