"""Constitutions: load and validate the YAML, hash its canonical form, diff two versions, import
the Anthropic CAI paper's and llm-swarm's JSON files into our format."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import CharterError
from engine.validation import field_path, load_schema, read_yaml, schema_errors

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "constitution" / "schema.json"
# Relative to the working directory, like every path in a recipe or on the command line: charter runs
# from the project root. DEFAULT_CONSTITUTION_PATH is the same shipped file, wherever charter runs.
DEFAULT_CONSTITUTION = "constitution/default.yaml"
DEFAULT_CONSTITUTION_PATH = SCHEMA_PATH.parent.parent / DEFAULT_CONSTITUTION
JUDGE_TEMPLATE_FIELDS = ("conversation", "response_a", "response_b", "question")

PRINCIPLE_TEXT_FIELDS = ("critique", "revision", "comparison", "check")
DEFAULT_CHECK = "Is the assistant's reply helpful, honest and harmless?"  # a principle without its own `check`


@dataclass(frozen=True)
class Principle:
    """One principle: how to critique, how to revise, and the judge's comparison question."""

    id: str
    critique: str
    revision: str
    comparison: str
    check: str = DEFAULT_CHECK  # yes/no question about one reply (pointwise judge); Yes = meets the principle
    tags: tuple[str, ...] = ()
    weight: float = 1.0


@dataclass(frozen=True)
class JudgeSettings:
    """The constitution's optional `judge` section, parsed once at load time; None: charter's default."""

    template: str | None = None  # comparison prompt with {conversation} {response_a} {response_b} {question}
    options: tuple[str, str] = ("A", "B")  # option labels, each one token for the judge's tokenizer
    few_shot: tuple[dict[str, str], ...] = ()  # worked comparisons shown before the real one


@dataclass(frozen=True)
class Constitution:
    """A validated constitution; `sha256` identifies its content (rows carry it for resume)."""

    name: str
    version: str
    description: str
    principles: tuple[Principle, ...]
    few_shot: tuple[dict[str, str], ...]
    judge: JudgeSettings
    sha256: str
    path: str

    def __hash__(self) -> int:
        # The dict/list fields are not hashable; equal constitutions have equal content hashes.
        return hash(self.sha256)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.principles)

    def principle(self, id: str) -> Principle:
        """The principle with this id; CharterError naming the known ids if there is none."""
        for p in self.principles:
            if p.id == id:
                return p
        raise CharterError(f"{self.path}: no principle '{id}' (known: {', '.join(self.ids)})")


def validation_errors(data: object, source: str) -> list[str]:
    """Every problem as `SOURCE: field.path: problem`: schema errors sorted by path, then duplicate ids."""
    errors = schema_errors(data, load_schema(SCHEMA_PATH), source)
    principles = data.get("principles") if isinstance(data, dict) else None
    if isinstance(principles, list):
        seen: set[str] = set()
        for i, principle in enumerate(principles):
            pid = principle.get("id") if isinstance(principle, dict) else None
            if not isinstance(pid, str):
                continue
            if pid in seen:
                errors.append(f"{source}: {field_path(['principles', i, 'id'])}: duplicate id '{pid}'")
            seen.add(pid)
    return errors


def canonical_sha256(data: dict[str, Any]) -> str:
    """Hash of the canonical JSON form, so comments, key order and YAML style don't change it."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _read_and_check(path: str | Path) -> tuple[Any, list[str]]:
    """Parse and validate one file; returns (data, error lines) and never raises for bad input."""
    try:
        data = read_yaml(path, "constitution")
    except CharterError as exc:
        return None, [str(exc)]
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        return data, [f"{path}: expected a mapping with name, version, description, principles; got {kind}"]
    return data, validation_errors(data, str(path))


def validate_file(path: str | Path) -> list[str]:
    """Error lines for a constitution file (empty when it is valid); for `charter constitution validate`."""
    return _read_and_check(path)[1]


def load_constitution(path: str | Path = DEFAULT_CONSTITUTION) -> Constitution:
    """Read and validate a constitution YAML; one CharterError lists every problem, one per line."""
    data, errors = _read_and_check(path)
    if errors:
        raise CharterError("\n".join(errors))
    principles = tuple(
        Principle(
            id=p["id"],
            critique=p["critique"].strip(),
            revision=p["revision"].strip(),
            comparison=p["comparison"].strip(),
            check=p.get("check", DEFAULT_CHECK).strip(),
            tags=tuple(p.get("tags", ())),
            weight=float(p.get("weight", 1.0)),
        )
        for p in data["principles"]
    )
    return Constitution(
        name=data["name"],
        version=data["version"],
        description=data["description"].strip(),
        principles=principles,
        few_shot=tuple(dict(example) for example in data.get("few_shot", ())),
        judge=_judge_settings(data.get("judge", {}), str(path)),
        sha256=canonical_sha256(data),
        path=str(path),
    )


def _judge_settings(raw: dict[str, Any], source: str) -> JudgeSettings:
    template = raw.get("template")
    missing = [f for f in JUDGE_TEMPLATE_FIELDS if template is not None and "{" + f + "}" not in template]
    if missing:
        raise CharterError(f"{source}: judge.template: missing placeholder(s) {', '.join('{' + m + '}' for m in missing)}")
    return JudgeSettings(template, tuple(raw.get("options", ("A", "B"))), tuple(dict(s) for s in raw.get("few_shot", ())))


def describe(c: Constitution) -> str:
    """Multi-line human summary for `charter constitution show`."""
    weight = {p.id: f" x{p.weight:g}" if p.weight != 1.0 else "" for p in c.principles}
    tags = {p.id: f"[{', '.join(p.tags)}]{weight[p.id]}" for p in c.principles}
    id_width = max(len(pid) for pid in tags)
    tag_width = max(len(t) for t in tags.values())
    lines = [
        f"{c.name} {c.version}  ({c.path})",
        f"sha256: {c.sha256}",
        c.description,
        f"{len(c.principles)} principles, {len(c.few_shot)} few-shot examples:",
    ]
    for p in c.principles:
        question = p.comparison if len(p.comparison) <= 70 else p.comparison[:67] + "..."
        lines.append(f"  {p.id:<{id_width}}  {tags[p.id]:<{tag_width}}  {question}")
    return "\n".join(lines)


def semver_key(version: str) -> tuple:
    """Order semantic versions: 1.2.0 < 1.10.0, 2.0.0-rc.1 < 2.0.0; build metadata (+...) is ignored."""
    core, _, pre = version.split("+", 1)[0].partition("-")
    numbers = tuple(int(part) for part in core.split("."))
    # A pre-release sorts before its release; its dot-separated parts compare numerically when numeric.
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    return numbers + ((0, parts) if pre else (1, ()))


def version_problem(old: Constitution, new: Constitution) -> str | None:
    """Why `new` breaks version discipline against `old` (content changed, version not increased), or None."""
    if old.sha256 == new.sha256:
        return None
    if semver_key(new.version) > semver_key(old.version):
        return None
    return (f"{new.path}: content changed (sha256 {old.sha256[:12]} -> {new.sha256[:12]}) but version "
            f"{new.version} is not greater than {old.version} in {old.path}; bump `version`")


def diff_constitutions(old: Constitution, new: Constitution) -> list[str]:
    """What changed from `old` to `new`, one line each (`+` added, `-` removed, `~` changed)."""
    lines = []
    for field in ("name", "version"):
        if getattr(old, field) != getattr(new, field):
            lines.append(f"~ {field} {getattr(old, field)} -> {getattr(new, field)}")
    if old.description != new.description:
        lines.append("~ description changed")
    old_by_id = {p.id: p for p in old.principles}
    new_by_id = {p.id: p for p in new.principles}
    lines += [f"- principle {pid} removed" for pid in old.ids if pid not in new_by_id]
    lines += [f"+ principle {pid} added" for pid in new.ids if pid not in old_by_id]
    for pid in (pid for pid in new.ids if pid in old_by_id):
        before, after = old_by_id[pid], new_by_id[pid]
        changed = [f for f in PRINCIPLE_TEXT_FIELDS if getattr(before, f) != getattr(after, f)]
        lines += [f"~ principle {pid}: {f} changed" for f in changed]
        if before.tags != after.tags:
            lines.append(f"~ principle {pid}: tags {list(before.tags)} -> {list(after.tags)}")
        if before.weight != after.weight:
            lines.append(f"~ principle {pid}: weight {before.weight:g} -> {after.weight:g}")
    common_old = [pid for pid in old.ids if pid in new_by_id]
    common_new = [pid for pid in new.ids if pid in old_by_id]
    if common_old != common_new:
        lines.append("~ principle order changed")
    if old.few_shot != new.few_shot:
        lines.append(f"~ few_shot changed ({len(old.few_shot)} -> {len(new.few_shot)} examples)")
    if old.judge != new.judge:
        lines.append("~ judge changed")
    return lines


# --- import of third-party constitution formats ------------------------------------------------

ANTHROPIC_COMPARISONS = "RLMadisonInstructions.json"
ANTHROPIC_FEW_SHOT = "CritiqueRevisionFewShotPrompts.json"


def import_foreign(path: str | Path) -> dict[str, Any]:
    """Convert an Anthropic CAI-paper or llm-swarm JSON file into a constitution dict valid under our
    schema (version 0.0.0: review and bump it before use)."""
    path = Path(path)
    data = _read_json(path)
    if isinstance(data, dict) and isinstance(data.get("constitutions"), list):
        converted = _from_llm_swarm(data, path)
    elif isinstance(data, dict) and data and all(
        isinstance(v, dict) and {"prompt", "edit_request"} <= v.keys() for v in data.values()
    ):
        converted = _from_anthropic(data, path)
    else:
        raise CharterError(
            f"{path}: unknown constitution format; expected the Anthropic paper's "
            "CritiqueRevisionInstructions.json or llm-swarm's {\"constitutions\": [...]}"
        )
    errors = validation_errors(converted, f"{path} (converted)")
    if errors:
        raise CharterError("\n".join(errors))
    return converted


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise CharterError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CharterError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from None


def _between(text: str, start: str, end: str) -> str:
    """`text` with the `start` label and the trailing `end` label (and surrounding whitespace) removed."""
    return text.strip().removeprefix(start).strip().removesuffix(end).strip()


def _generic_comparison(critique: str) -> str:
    return f"Which response better avoids the problems this request looks for? {critique}"


def _from_anthropic(data: dict[str, Any], path: Path) -> dict[str, Any]:
    comparisons_file = path.parent / ANTHROPIC_COMPARISONS
    comparisons = []
    if comparisons_file.is_file():
        comparisons = [_between(q, "", "Options:") for q in _read_json(comparisons_file)]
    principles = []
    for i, (key, entry) in enumerate(data.items()):
        prompt = entry["prompt"][0] if isinstance(entry["prompt"], list) else entry["prompt"]
        critique = _between(prompt, "CritiqueRequest:", "Critique:")
        principles.append({
            "id": f"anthropic-{key}".lower(),
            "tags": ["anthropic-cai-paper"],
            "critique": critique,
            "revision": _between(entry["edit_request"], "RevisionRequest:", "Revision:"),
            "comparison": comparisons[i] if i < len(comparisons) else _generic_comparison(critique),
        })
    few_shot_file = path.parent / ANTHROPIC_FEW_SHOT
    few_shot = []
    if few_shot_file.is_file():
        few_shot = [_anthropic_example(text) for text in _read_json(few_shot_file)]
    return _imported(path, "the Anthropic CAI paper", principles, few_shot)


def _anthropic_example(text: str) -> dict[str, str]:
    """One few-shot transcript (`Human: .. Assistant: .. CritiqueRequest: .. Critique: ..
    RevisionRequest: .. Revision: ..`) as {prompt, response, critique, revision}."""
    dialogue, _, rest = text.partition("\n\nCritiqueRequest:")
    conversation, _, response = dialogue.rpartition("\n\nAssistant:")
    critique = rest.partition("\n\nCritique:")[2].partition("\n\nRevisionRequest:")[0]
    revision = rest.partition("\n\nRevision:")[2].strip().removesuffix("Human:")
    prompt = conversation.strip()
    if prompt.count("Human:") == 1:
        prompt = prompt.removeprefix("Human:")
    return _example(prompt, response, critique, revision)


def _from_llm_swarm(data: dict[str, Any], path: Path) -> dict[str, Any]:
    principles = [
        {
            "id": f"llm-swarm-{i}",
            "tags": ["llm-swarm"],
            "critique": entry["critic"].strip(),
            "revision": entry["revision"].strip(),
            "comparison": _generic_comparison(entry["critic"].strip()),
        }
        for i, entry in enumerate(data["constitutions"])
    ]
    few_shot = [_llm_swarm_example(chat) for chat in data.get("system_chat", []) if len(chat) >= 6]
    return _imported(path, "llm-swarm", principles, few_shot)


def _llm_swarm_example(chat: list[dict[str, str]]) -> dict[str, str]:
    """A chat ending in response, critique request, critique, revision request, revision."""
    turns = chat[:-5]
    if len(turns) == 1:
        prompt = turns[0]["content"]
    else:
        speaker = {"user": "Human", "assistant": "Assistant"}
        prompt = "\n\n".join(f"{speaker.get(t['role'], t['role'])}: {t['content']}" for t in turns)
    return _example(prompt, chat[-5]["content"], chat[-3]["content"], chat[-1]["content"])


def _example(prompt: str, response: str, critique: str, revision: str) -> dict[str, str]:
    fields = {"prompt": prompt, "response": response, "critique": critique, "revision": revision}
    return {key: text.strip() for key, text in fields.items()}


def _imported(
    path: Path, origin: str, principles: list[dict[str, Any]], few_shot: Iterable[dict[str, str]]
) -> dict[str, Any]:
    """Assemble an imported constitution; few-shot examples with a blank field are dropped."""
    result: dict[str, Any] = {
        "name": path.stem,
        "version": "0.0.0",
        "description": f"Imported from {path.name} ({origin}); review the principles, then set a version.",
        "principles": principles,
    }
    complete = [example for example in few_shot if all(v for v in example.values())]
    if complete:
        result["few_shot"] = complete
    return result
