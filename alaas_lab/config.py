"""Configuration as a service: YAML or dict → typed, validated, frozen config.

The shape follows the ALaaS paper's example file and adds what a session needs
(data source, classes, budget, target accuracy, cache, seed)::

    name: IMG_CLASSIFICATION
    version: 0.1
    active_learning:
      strategy: {type: least_confidence}
      model: {name: resnet18, weights: ~/models/resnet18.pth, batch_size: 32}
      device: cpu
    al_worker: {protocol: tcp, host: 127.0.0.1, port: 60035}
    data: {source: "s3://bucket/pool/*.png", kind: image}
    classes: [cat, dog]
    budget: {total: 1000, per_round: 100}
    target_accuracy: 0.9
    cache_dir: ~/.cache/alaas_lab
    seed: 0
    plugins: [my_strategies.py, mypkg.backbones]   # imported before names are checked

Every key is checked once, here: an unknown key, a missing one or a bad value
raises :class:`~alaas_lab.errors.ConfigError` naming the key path (for example
``active_learning.strategy.type``), the value received and what is allowed. Names
(strategies, backbones) are checked against the live registries, after the plugins
are imported. Two keys of the paper's file: ``active_learning.model.hub_name``
(``pytorch/vision``: the model is torchvision's, ``torchvision/<name>``) and
``al_worker.replicas``, removed (:data:`REMOVED_KEYS` says what replaces it).
See ``docs/config.md``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError

__all__ = [
    "ActiveLearningConfig",
    "BudgetConfig",
    "Config",
    "DataConfig",
    "EvaluationConfig",
    "ExecutorConfig",
    "ModelConfig",
    "StrategyConfig",
    "WorkerConfig",
    "load_config",
]

AUTO = "auto"
#: ``hub_name`` values the worker understands: torch.hub's repository of torchvision
#: (any ``:ref``), whose models are the installed torchvision's ``torchvision/<name>``.
TORCHVISION_HUB = "pytorch/vision"
#: Keys that were parsed and never used, and what to write instead.
REMOVED_KEYS = {
    "al_worker.replicas": (
        "a session has one worker process, which already runs fetch, decode and embed in "
        "parallel threads sized to the machine's cores; to spread the embedding over more "
        "processes or machines, set 'executor: {kind: dask, address: tcp://<scheduler>:8786}' "
        "instead (docs/dask.md), and delete 'replicas'."),
}


def _spec(*, choices: Any = None, minimum: float | None = None, maximum: float | None = None,
          doc: str = "", resolve: Any = None) -> dict[str, Any]:
    """Field metadata read by the validator: allowed values and bounds.

    ``resolve(value, path)`` (optional) is called instead of the choice check for a
    ``"package.module:function"`` value: it imports and registers it, or raises.
    """
    return {"choices": choices, "min": minimum, "max": maximum, "doc": doc, "resolve": resolve}


def _strategy_choices() -> list[str]:
    # Imported lazily: the zoo (built-ins plus the user's registered ones) is
    # the single source of truth for strategy names.
    from . import strategies

    return sorted([*strategies.names(), AUTO])


def _resolve_strategy(value: str, path: str) -> None:
    """Import and register a ``"package.module:function"`` strategy, as the worker will."""
    from .errors import InputError
    from .strategies import _registry

    try:
        _registry.resolve(value)
    except InputError as exc:
        raise ConfigError(f"config key '{path}' has a bad value {value!r}: {exc}") from None


@dataclass(frozen=True)
class StrategyConfig:
    """Which strategy selects items: a zoo name, or ``auto`` for PSHEA."""

    type: str = field(default="least_confidence", metadata=_spec(
        choices=_strategy_choices, resolve=_resolve_strategy,
        doc="a zoo name, 'auto', or 'package.module:function'"))
    candidates: tuple[str, ...] = field(
        default=(), metadata=_spec(choices=_strategy_choices, resolve=_resolve_strategy,
                                   doc="strategies PSHEA races when type is auto (empty: all)"))
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    """The backbone that embeds items; only a last layer is trained on top.

    ``name`` is a backbone of the registry (``models.backbone_names()``: the built-in
    ones and those a plugin registers) or ``torchvision/<model>`` for any torchvision
    classification model. ``hub_name`` is the paper's torch.hub repository of the
    model: ``pytorch/vision`` (any ``:ref``) makes ``name`` torchvision's model,
    ``torchvision/<name>`` with its ImageNet weights, what ``torch.hub.load(hub_name,
    name, pretrained=True)`` gives; other repositories are refused (the worker never
    runs code from the network). ``weights`` is a state_dict file, a URL
    (http, https, s3, file; fetched once into torch's hub cache) or, for
    ``torchvision/<model>``, a weights enum name such as ``IMAGENET1K_V1``.
    ``sha256`` checks what a URL or file holds; ``input_size`` overrides the side the
    images are resized to.
    """

    name: str = "resnet18"
    hub_name: str | None = None
    weights: str | None = None
    sha256: str | None = None
    input_size: int | None = field(default=None, metadata=_spec(minimum=8, maximum=2048))
    batch_size: int = field(default=32, metadata=_spec(minimum=1, maximum=4096))

    def __post_init__(self) -> None:
        from .models import backbone_names
        from .models._registry import TORCHVISION_PREFIX

        name = self.name
        if not isinstance(name, str):
            raise ConfigError(_bad("active_learning.model.name", name, "a string"))
        if self.hub_name is not None:
            name = _from_hub(self.hub_name, name)
            object.__setattr__(self, "name", name)
        if name.startswith(TORCHVISION_PREFIX):
            if not name[len(TORCHVISION_PREFIX):]:
                raise ConfigError(_bad("active_learning.model.name", name,
                                       "torchvision/<model>, e.g. torchvision/efficientnet_b0"))
        else:
            allowed = [*backbone_names(), f"{TORCHVISION_PREFIX}<model>"]
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise ConfigError(_bad("active_learning.model.name", name,
                                       "one of: " + ", ".join(allowed)) + hint)
        if self.sha256 is not None:
            digest = self.sha256.lower()
            if len(digest) < 8 or any(c not in "0123456789abcdef" for c in digest):
                raise ConfigError(_bad("active_learning.model.sha256", self.sha256,
                                       "the file's sha256 in hex (at least its first 8 digits)"))
            object.__setattr__(self, "sha256", digest)


def _from_hub(hub_name: str, name: str) -> str:
    """The backbone ``torch.hub.load(hub_name, name, pretrained=True)`` stands for.

    ``pytorch/vision[:ref]`` is torchvision's repository: its ``resnet18`` is the
    installed torchvision's ``torchvision/resnet18`` (the ref is not fetched; the
    weights are the model's ImageNet ``DEFAULT``). Anything else raises, with the
    routes that do work.
    """
    from .models._registry import TORCHVISION_PREFIX

    repo = hub_name.strip().partition(":")[0].rstrip("/").lower()
    if repo in (TORCHVISION_HUB, f"github.com/{TORCHVISION_HUB}"):
        return name if name.startswith(TORCHVISION_PREFIX) else TORCHVISION_PREFIX + name
    raise ConfigError(
        f"config key 'active_learning.model.hub_name' has {hub_name!r}; only "
        f"'{TORCHVISION_HUB}' (torchvision's models) is understood, because the worker never "
        "runs model code fetched from the network. Delete hub_name and name a backbone "
        "(models.backbone_names()), 'torchvision/<model>', or your own model registered by a "
        "plugin (models.register_backbone) or exported with name: torchscript.")


@dataclass(frozen=True)
class ActiveLearningConfig:
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    # auto: cuda, else mps, else cpu. Used for embedding; the head is numpy/scipy on CPU.
    device: str = field(default="cpu", metadata=_spec(
        choices=lambda: ["auto", "cpu", "cuda", "cuda:<index>", "mps"]))


@dataclass(frozen=True)
class WorkerConfig:
    """Where the worker listens, and how long it lives.

    Every message is signed with a fresh per-worker key (in the 0600 connection
    file); a host other than loopback also needs CURVE keys (``curve_dir``).
    ``idle_timeout`` is how many seconds a worker with no request and no job waits
    before it exits (0: never); starting the session again resumes it.
    """

    protocol: Literal["tcp", "ipc"] = "tcp"
    host: str = "127.0.0.1"
    port: int = field(default=0, metadata=_spec(minimum=0, maximum=65535,
                                                doc="0 picks a free port"))
    curve_dir: str | None = None  # CURVE keys (alaas-lab keygen); required beyond loopback
    idle_timeout: float = field(default=4 * 3600.0, metadata=_spec(
        minimum=0.0, doc="seconds with no request and no job before the worker exits; 0: never"))


@dataclass(frozen=True)
class ExecutorConfig:
    """Where the embed stage runs: in the worker, or on a Dask cluster."""

    kind: Literal["local", "dask"] = "local"
    address: str | None = None


@dataclass(frozen=True)
class DataConfig:
    """The unlabeled pool: URIs, globs or a manifest (or arrays pushed in memory)."""

    source: tuple[str, ...] = ()
    kind: Literal["image", "text", "array"] = "image"
    storage_options: dict[str, Any] = field(default_factory=dict)
    image_mode: Literal["L", "RGB"] = "RGB"
    root: str | None = None  # when set, local and file:// items must lie inside it


@dataclass(frozen=True)
class BudgetConfig:
    """Labels the human will give: in total, and per round."""

    total: int = field(default=1000, metadata=_spec(minimum=0))
    per_round: int = field(default=100, metadata=_spec(minimum=1))
    initial: int = field(default=0, metadata=_spec(
        minimum=0, doc="random labels asked for before the first strategy round"))


@dataclass(frozen=True)
class RoundsConfig:
    """When the worker selects: after each round is labeled, or ahead of the labeler.

    ``sync`` is the paper's loop (select, label all, fit, select...), exactly
    reproducible. ``async`` keeps at least ``lookahead`` selected, unanswered items
    queued (0: one round, ``budget.per_round``) and selects the next ones with the
    newest head while the human labels, so the labeler never waits for the model.
    """

    mode: Literal["sync", "async"] = "async"
    lookahead: int = field(default=0, metadata=_spec(
        minimum=0, doc="selected, unanswered items kept queued (0: budget.per_round)"))
    lease_s: float = field(default=600.0, metadata=_spec(
        minimum=1.0, doc="how long an item shown to one labeler is kept from the others"))


@dataclass(frozen=True)
class EvaluationConfig:
    """How the worker measures accuracy after each round.

    Items pushed as an evaluation set (with their labels) are used when present;
    otherwise a deterministic random ``holdout`` share of the human labels is
    kept out of training and scored instead.
    """

    holdout: float = field(default=0.2, metadata=_spec(minimum=0.0, maximum=0.9))


@dataclass(frozen=True)
class Config:
    """A whole session's configuration. Build it with :func:`load_config`."""

    name: str = "alaas_session"
    version: str = "0.1"
    active_learning: ActiveLearningConfig = field(default_factory=ActiveLearningConfig)
    al_worker: WorkerConfig = field(default_factory=WorkerConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    classes: tuple[str, ...] = ()
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    rounds: RoundsConfig = field(default_factory=RoundsConfig)
    target_accuracy: float | None = field(default=None, metadata=_spec(minimum=0.0, maximum=1.0))
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    cache_dir: str = "~/.cache/alaas_lab"
    session_dir: str | None = None
    seed: int = 0
    #: modules or .py files imported (kernel and worker) before names are checked
    plugins: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists), round-trips through :func:`load_config`."""
        return _plain(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> Config:
        """A copy with top-level keys changed, validated again."""
        return load_config({**self.to_dict(), **{k: _plain(v) for k, v in changes.items()}})


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None,
                **overrides: Any) -> Config:
    """Read and validate a config from a YAML file, a YAML string, or a dict.

    Parameters
    ----------
    source : path, YAML text, mapping, Config or None
        ``None`` gives the defaults.
    **overrides
        Top-level keys that replace the source's (validated as well).

    Raises
    ------
    ConfigError
        Naming the key path, the value given and what is allowed.
    """
    if isinstance(source, Config):
        raw: Any = source.to_dict()
    elif source is None:
        raw = {}
    elif isinstance(source, Mapping):
        raw = dict(source)
    else:
        raw = _read_yaml(source)
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"a config must be a YAML mapping of keys to values; got {type(raw).__name__}.")
    raw = {**raw, **overrides}
    raw = _load_plugins(raw, _yaml_path(source))
    config = _build(Config, raw, path="")
    _check_across(config)
    return config


def _check_across(config: Config) -> None:
    """Checks that involve more than one key: both values are printed."""
    budget = config.budget
    if budget.total and budget.per_round > budget.total:
        raise ConfigError(
            f"config key 'budget.per_round' ({budget.per_round}) is larger than 'budget.total' "
            f"({budget.total}); lower per_round or raise total.")
    strategy = config.active_learning.strategy
    if strategy.candidates and strategy.type != AUTO:
        raise ConfigError(
            "config key 'active_learning.strategy.candidates' is only used when "
            f"'active_learning.strategy.type' is 'auto' (got {strategy.type!r}); "
            "remove candidates or set type: auto.")
    if strategy.type != AUTO and strategy.params:
        from . import strategies

        accepted = strategies.options(strategy.type)
        unknown = sorted(set(strategy.params) - (accepted or set())) if accepted is not None \
            else []
        if unknown:
            raise ConfigError(
                f"config key 'active_learning.strategy.params' has {unknown}, which strategy "
                f"{strategy.type!r} does not take; it accepts "
                f"{sorted(accepted) if accepted else 'no options'}.")
    if AUTO in strategy.candidates:
        raise ConfigError(
            "config key 'active_learning.strategy.candidates' lists 'auto'; "
            "candidates must be strategies of the zoo.")
    executor = config.executor
    if executor.kind == "dask" and not executor.address:
        raise ConfigError(
            "config key 'executor.address' is required when 'executor.kind' is 'dask'; "
            "give the scheduler address, e.g. tcp://127.0.0.1:8786.")


def _load_plugins(raw: Mapping[str, Any], config_file: Path | None) -> dict[str, Any]:
    """Import the ``plugins`` (and the entry points) before any name is checked.

    The kernel and the worker both come through here, so a strategy a plugin
    registers is known to both, and an unknown one is refused the same way.
    Relative ``.py`` paths are taken from the config file's folder (else the
    current directory) and stored absolute, so the worker finds them from its
    session directory's copy of the config.
    """
    from .plugins import load_entry_points, load_plugins

    raw = dict(raw)
    if raw.get("plugins") in (None, [], ()):
        raw.pop("plugins", None)
        load_entry_points()
        return raw
    specs = _coerce(raw["plugins"], tuple[str, ...], {}, "plugins")
    base = config_file.parent if config_file is not None else Path.cwd()
    raw["plugins"] = load_plugins(specs, base_dir=base)
    return raw


def _yaml_path(source: Any) -> Path | None:
    """The config file ``source`` names, or None (a dict, Config or YAML text)."""
    if source is None or isinstance(source, (Mapping, Config)):
        return None
    text = str(source)
    if isinstance(source, os.PathLike) or ("\n" not in text and text.endswith((".yml", ".yaml"))):
        return Path(text).expanduser().resolve()
    return None


def _read_yaml(source: str | os.PathLike[str]) -> Any:
    text = str(source)
    is_path = isinstance(source, os.PathLike) or (
        "\n" not in text and text.endswith((".yml", ".yaml")))
    if is_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; check the path or pass a dict.")
        text = path.read_text(encoding="utf-8")
        where = str(path)
    else:
        where = "<string>"
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config {where} is not valid YAML{at}: "
                          f"{getattr(exc, 'problem', exc)}") from None


# ---------------------------------------------------------------- validation

def _build(cls: type, raw: Any, *, path: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config key '{path}' must be a mapping of keys; got {raw!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            if where in REMOVED_KEYS:
                raise ConfigError(f"config key '{where}' is no longer read: "
                                  f"{REMOVED_KEYS[where]}")
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown config key '{where}'.{hint} "
                              f"Allowed keys here: {', '.join(fields)}.")
    values = {}
    for name, f in fields.items():
        if name in raw:
            where = f"{path}.{name}" if path else name
            values[name] = _coerce(raw[name], hints[name], f.metadata, where)
    return cls(**values)


def _coerce(value: Any, hint: Any, meta: Mapping[str, Any], path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, meta, path)
    if dataclasses.is_dataclass(hint):
        return _build(hint, {} if value is None else value, path=path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(_bad(path, value, "one of: " + ", ".join(map(str, args))))
        return value
    if origin is tuple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(_bad(path, value, "a list of strings"))
        out = tuple(_coerce(v, args[0], meta, f"{path}[{i}]") for i, v in enumerate(items))
        if len(set(out)) != len(out):
            raise ConfigError(_bad(path, value, "a list without duplicates"))
        return out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(_bad(path, value, "a mapping"))
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(_bad(path, value, "true or false"))
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(_bad(path, value, "an integer" + _bounds(meta)))
        return _check_bounds(value, meta, path, "an integer")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(_bad(path, value, "a number" + _bounds(meta)))
        return _check_bounds(float(value), meta, path, "a number")
    if hint is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and path.endswith(
                "version"):
            value = str(value)  # `version: 0.1` is a number to YAML
        if isinstance(value, int) and not isinstance(value, bool) and path.startswith("classes["):
            value = str(value)  # `classes: [0, 1, 2]`: digit classes are names "0", "1", "2"
        if not isinstance(value, str):
            raise ConfigError(_bad(path, value, "a string"))
        return _check_choice(value, meta, path)
    raise TypeError(f"config field {path} has an unsupported type {hint!r}")  # our bug


def _check_choice(value: str, meta: Mapping[str, Any], path: str) -> str:
    choices = meta.get("choices")
    if choices is None:
        return value
    if meta.get("resolve") is not None and ":" in value:
        meta["resolve"](value, path)  # "package.module:function": imported and registered
        return value
    allowed = list(choices() if callable(choices) else choices)
    if path.endswith("device"):
        value = value.lower()
        ok = value in ("auto", "cpu", "cuda", "mps") or (
            value.startswith("cuda:") and value[5:].isdigit())
    else:
        ok = value in allowed
    if not ok:
        close = difflib.get_close_matches(value, allowed, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(_bad(path, value, "one of: " + ", ".join(allowed)) + hint)
    return value


def _check_bounds(value: float, meta: Mapping[str, Any], path: str, kind: str) -> Any:
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(_bad(path, value, kind + _bounds(meta)))
    return value


def _bounds(meta: Mapping[str, Any]) -> str:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and hi is not None:
        return f" between {lo} and {hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def _bad(path: str, value: Any, allowed: str) -> str:
    return f"config key '{path}' has a bad value {value!r}; allowed: {allowed}."


def config_diff(ours: Mapping[str, Any], theirs: Mapping[str, Any], prefix: str = ""
                ) -> list[str]:
    """Dotted key paths whose values differ between two ``Config.to_dict()`` results."""
    out: list[str] = []
    for key in sorted(set(ours) | set(theirs), key=str):
        a, b, path = ours.get(key), theirs.get(key), f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += config_diff(a, b, f"{path}.")
        elif a != b:
            out.append(f"{path}: {b!r} (worker) vs {a!r} (yours)")
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
