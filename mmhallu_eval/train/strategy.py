"""Pair strategies as plugins: a module declares a `Strategy` (name, options dataclass, build function, what it
needs) and is found through this registry — the built-ins in `mmhallu_eval.train.strategies`, others through the
entry-point group `mmhallu_eval.strategies`. `pairs build`, `loop` and `demo` take their options and help from
the declarations, so a new strategy touches its own module only."""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Literal

from ..annotations import load_graphs
from ..data import missing_files
from ..errors import TaskError
from ..options import check_option_types, fields_of, parse
from ..terminal import warn
from .pairs import check_pair

ENTRY_POINT_GROUP = "mmhallu_eval.strategies"
#: what a strategy builds its pairs from: training annotations (+ images), a run on training images, the model
Need = Literal["annotations", "run", "model"]
Pair = dict[str, Any]


@dataclass
class PairContext:
    """Everything a strategy may read besides its own options."""

    annotations: str | None = None
    images: str | None = None
    seed: int = 0
    #: pair-type weights (obj/attr/rel/wh), set from a base run's failures or fixed
    mix: dict[str, float] = field(default_factory=dict)
    #: a run of the model on training images (HA-DPO)
    run: str | None = None
    #: the model being tuned and how to load it (strategies that sample it)
    model: str | None = None
    backend_args: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    max_new_tokens: int | None = None
    #: the evaluation tasks (with their options) the pairs are for
    tasks: list[str] = field(default_factory=list)
    task_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: a folder for files a strategy writes (noised images, sampled captions)
    work_dir: Path = Path(".")
    log: Callable[[str], None] = print
    _graphs: list[dict[str, Any]] | None = None

    @property
    def graphs(self) -> list[dict[str, Any]]:
        if self._graphs is None:
            if not self.annotations or not self.images:
                raise TaskError("these pair strategies need the training annotations and images: --annotations FILE and --images DIR")
            self._graphs = load_graphs(self.annotations)
        return self._graphs


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    #: the options dataclass; its fields become flags of `pairs build` and `loop` (shared fields share a flag)
    options: type
    build: Callable[[PairContext, Any], list[Pair]]
    needs: tuple[Need, ...] = ("annotations",)
    #: work done once before building, recorded as a loop stage (own_captions' sampling): (ctx, options) → outputs
    prepare: Callable[[PairContext, Any], dict[str, Any]] | None = None


_REGISTRY: dict[str, Strategy] = {}
_loaded = False


def register(strategy: Strategy) -> Strategy:
    check_option_types(strategy.options, f"pair strategy {strategy.name!r}")
    known = _REGISTRY.get(strategy.name)
    if known is not None and known is not strategy:
        raise TaskError(f"pair strategy {strategy.name!r} is registered twice")
    _REGISTRY[strategy.name] = strategy
    return strategy


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import strategies

    for mod in pkgutil.iter_modules(strategies.__path__):
        if not mod.name.startswith("_"):
            module = importlib.import_module(f"{strategies.__name__}.{mod.name}")
            if hasattr(module, "STRATEGY"):
                register(module.STRATEGY)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found = ep.load()
        except Exception as exc:  # reported, not skipped silently: a broken plugin must not hide the others
            warn(f"warning: pair strategy plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}")
            continue
        register(getattr(found, "STRATEGY", found))


def strategy_names() -> list[str]:
    _load()
    return list(_REGISTRY)


def get_strategy(name: str) -> Strategy:
    _load()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=2, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise TaskError(f"unknown pair strategy {name!r}.{hint} Known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def strategy_options(names: list[str], values: dict[str, Any]) -> dict[str, Any]:
    """Each named strategy's typed options from one flat mapping of option name → value (the flags are shared: an
    option two strategies declare is set once). A value no chosen strategy declares is an error."""
    chosen = [get_strategy(n) for n in names]
    declared = {f.name for s in chosen for f, _ in fields_of(s.options)}
    unknown = sorted(k for k, v in values.items() if k not in declared and v is not None)
    if unknown:
        raise TaskError(f"option(s) {', '.join(unknown)} belong to none of the strategies {', '.join(names)}")
    out = {}
    for s in chosen:
        mine = {f.name for f, _ in fields_of(s.options)}
        out[s.name] = parse(s.options, {k: v for k, v in values.items() if k in mine and v is not None}, f"strategy {s.name!r}", prefix="--")
    return out


def build_pairs(names: list[str], ctx: PairContext, options: dict[str, Any]) -> list[Pair]:
    pairs: list[Pair] = []
    for name in names:
        built = get_strategy(name).build(ctx, options[name])
        if not isinstance(built, list):
            raise TaskError(f"pair strategy {name!r} returned {type(built).__name__}, not a list of pairs (a fault in the strategy's code)")
        for i, pair in enumerate(built):  # a fault named with its strategy now, not as a line of pairs.jsonl when training starts
            shown = f" ({pair['id']!r})" if isinstance(pair, dict) and "id" in pair else ""
            check_pair(pair, f"pair strategy {name!r}: pair {i}{shown}")
        pairs += built
    check_pair_images(pairs, ctx.log)
    return pairs


def check_pair_images(pairs: list[Pair], log: Callable[[str], None]) -> None:
    """Each image the pairs show looked up once: none of them there is a wrong images folder (the annotations' file
    names are relative to it), an error now rather than when training starts; some missing, one line saying how many
    (training refuses pairs whose images are missing)."""
    named, missing = missing_files(im for p in pairs for im in p.get("images", []))
    if not missing:
        return
    if len(missing) == len(named):
        raise TaskError(f"none of the {len(named)} images the pairs show is there (first: {missing[0]}); give the folder the annotations' "
                        "file names are relative to (--images; --train-images for mmhallu loop), or, for hadpo, a run whose images are "
                        "still where it read them")
    log(f"warning: {len(missing)} of {len(named)} images the pairs show are missing (first: {missing[0]}); "
        "`mmhallu train dpo` needs every one")
