"""Constitution loading, validation, hashing, diffing and import of third-party formats."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from engine.constitution import (
    DEFAULT_CONSTITUTION_PATH,
    SCHEMA_PATH,
    canonical_sha256,
    describe,
    diff_constitutions,
    import_foreign,
    load_constitution,
    validate_file,
    validation_errors,
)
from engine.errors import CharterError

# Our own files in the two foreign formats (tests/fixtures/constitutions/README.md), 6 principles each;
# where the development-only ../shared is present, the released originals (16 each) are imported too.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "constitutions"
ORIGINALS = Path(__file__).resolve().parents[2] / "shared" / "data" / "constitutions"
FOREIGN_SETS = [pytest.param(FIXTURES, 6, id="fixtures")] + (
    [pytest.param(ORIGINALS, 16, id="originals")] if ORIGINALS.is_dir() else []
)
foreign_sets = pytest.mark.parametrize("foreign, expected", FOREIGN_SETS)
ANTHROPIC = Path("anthropic-cai-paper") / "CritiqueRevisionInstructions.json"
LLM_SWARM = Path("llm-swarm") / "constitution_anthropic.json"
LLM_SWARM_GROK = Path("llm-swarm") / "constituion_grok.json"


def _principle(pid: str) -> dict[str, Any]:
    return {
        "id": pid,
        "tags": ["test"],
        "critique": f"Point out where the response breaks rule {pid}.",
        "revision": f"Rewrite the response to follow rule {pid}. Reply with only the rewritten response.",
        "comparison": f"Which response follows rule {pid} better?",
    }


@pytest.fixture
def valid() -> dict[str, Any]:
    return {
        "name": "tiny",
        "version": "1.0.0",
        "description": "A small constitution for tests.",
        "principles": [_principle(f"rule-{i}") for i in range(5)],
    }


def _write(tmp_path: Path, data: Any, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _single_error(tmp_path: Path, data: Any) -> str:
    errors = validate_file(_write(tmp_path, data))
    assert len(errors) == 1, errors
    return errors[0]


# --- the default constitution -----------------------------------------------------------------

def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_PATH.read_text()))


def test_default_constitution_validates() -> None:
    assert validate_file(DEFAULT_CONSTITUTION_PATH) == []


def test_default_constitution_has_at_least_12_principles_with_unique_ids() -> None:
    c = load_constitution(DEFAULT_CONSTITUTION_PATH)
    assert len(c.principles) >= 12
    assert len(set(c.ids)) == len(c.ids)


def test_default_revisions_ask_for_only_the_rewritten_response() -> None:
    for p in load_constitution().principles:
        assert "only the rewritten response" in p.revision, p.id


def test_default_comparisons_are_questions() -> None:
    for p in load_constitution().principles:
        assert p.comparison.startswith("Which") and p.comparison.endswith("?"), p.id


def test_principle_lookup_by_id() -> None:
    c = load_constitution()
    assert c.principle(c.ids[0]) == c.principles[0]


def test_unknown_principle_id_raises_naming_it() -> None:
    with pytest.raises(CharterError, match="no-such-principle"):
        load_constitution().principle("no-such-principle")


def test_describe_lists_every_principle_and_the_hash() -> None:
    c = load_constitution()
    text = describe(c)
    assert c.sha256 in text and c.version in text
    assert all(pid in text for pid in c.ids)


# --- malformed files --------------------------------------------------------------------------

def test_missing_revision_is_reported_at_its_path(tmp_path: Path, valid: dict[str, Any]) -> None:
    del valid["principles"][3]["revision"]
    error = _single_error(tmp_path, valid)
    assert str(tmp_path / "c.yaml") in error
    assert "principles[3]" in error and "revision" in error


def test_wrong_version_format_is_reported(tmp_path: Path, valid: dict[str, Any]) -> None:
    valid["version"] = "1.0"
    error = _single_error(tmp_path, valid)
    assert "version" in error and "'1.0'" in error


def test_empty_principles_are_reported(tmp_path: Path, valid: dict[str, Any]) -> None:
    valid["principles"] = []
    assert "principles" in _single_error(tmp_path, valid)


def test_unknown_top_level_key_is_reported(tmp_path: Path, valid: dict[str, Any]) -> None:
    valid["principels"] = []
    assert "principels" in _single_error(tmp_path, valid)


def test_unknown_principle_key_is_reported_at_its_path(tmp_path: Path, valid: dict[str, Any]) -> None:
    valid["principles"][1]["critque"] = "typo"
    error = _single_error(tmp_path, valid)
    assert "principles[1]" in error and "critque" in error


def test_blank_principle_text_is_reported(tmp_path: Path, valid: dict[str, Any]) -> None:
    valid["principles"][2]["comparison"] = "   "
    assert "principles[2].comparison" in _single_error(tmp_path, valid)


def test_duplicate_principle_id_is_reported_at_the_second_one(tmp_path: Path, valid: dict[str, Any]) -> None:
    valid["principles"][4]["id"] = "rule-1"
    error = _single_error(tmp_path, valid)
    assert "principles[4].id" in error and "duplicate id 'rule-1'" in error


def test_yaml_syntax_error_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nversion: 1.0.0\nprinciples: [\n  - id: a\n")
    [error] = validate_file(path)
    assert str(path) in error and "line " in error


def test_missing_file_is_reported(tmp_path: Path) -> None:
    [error] = validate_file(tmp_path / "absent.yaml")
    assert "absent.yaml" in error and "not found" in error


def test_non_mapping_file_is_reported(tmp_path: Path) -> None:
    assert "mapping" in _single_error(tmp_path, ["a", "b"])


def test_load_raises_one_error_listing_every_problem(tmp_path: Path, valid: dict[str, Any]) -> None:
    valid["version"] = "v1"
    del valid["principles"][0]["critique"]
    with pytest.raises(CharterError) as raised:
        load_constitution(_write(tmp_path, valid))
    lines = str(raised.value).splitlines()
    assert len(lines) == 2
    assert any("version" in line for line in lines) and any("principles[0]" in line for line in lines)


def test_validation_errors_accepts_a_valid_dict(valid: dict[str, Any]) -> None:
    assert validation_errors(valid, "inline") == []


# --- canonical hash ---------------------------------------------------------------------------

def test_hash_ignores_key_order_and_comments(tmp_path: Path, valid: dict[str, Any]) -> None:
    plain = load_constitution(_write(tmp_path, valid, "plain.yaml"))
    reordered = {key: valid[key] for key in reversed(list(valid))}
    reordered["principles"] = [dict(reversed(list(p.items()))) for p in valid["principles"]]
    path = tmp_path / "reordered.yaml"
    path.write_text("# a comment\n" + yaml.safe_dump(reordered, sort_keys=False) + "# trailing comment\n")
    assert load_constitution(path).sha256 == plain.sha256


def test_hash_changes_when_a_principle_text_changes(valid: dict[str, Any]) -> None:
    edited = copy.deepcopy(valid)
    edited["principles"][2]["revision"] += " Keep it short."
    assert canonical_sha256(edited) != canonical_sha256(valid)


# --- diff -------------------------------------------------------------------------------------

def test_diff_reports_added_removed_and_changed_principles(tmp_path: Path, valid: dict[str, Any]) -> None:
    old = load_constitution(_write(tmp_path, valid, "old.yaml"))
    new_data = copy.deepcopy(valid)
    new_data["version"] = "1.1.0"
    new_data["principles"][1]["revision"] = "Rewrite it. Reply with only the rewritten response."
    del new_data["principles"][0]
    new_data["principles"].append(_principle("rule-new"))
    new = load_constitution(_write(tmp_path, new_data, "new.yaml"))
    lines = diff_constitutions(old, new)
    assert "~ version 1.0.0 -> 1.1.0" in lines
    assert "- principle rule-0 removed" in lines
    assert "+ principle rule-new added" in lines
    assert "~ principle rule-1: revision changed" in lines


def test_diff_of_identical_constitutions_is_empty() -> None:
    assert diff_constitutions(load_constitution(), load_constitution()) == []


# --- import of third-party formats ------------------------------------------------------------

@foreign_sets
def test_import_anthropic_paper_yields_valid_principles(foreign: Path, expected: int) -> None:
    data = import_foreign(foreign / ANTHROPIC)
    assert validation_errors(data, "imported") == []
    assert len(data["principles"]) == expected
    assert data["principles"][0]["id"] == "anthropic-harmful0"


@foreign_sets
def test_import_anthropic_strips_request_markers(foreign: Path, expected: int) -> None:
    for p in import_foreign(foreign / ANTHROPIC)["principles"]:
        assert "CritiqueRequest" not in p["critique"] and not p["critique"].endswith("Critique:")
        assert "RevisionRequest" not in p["revision"] and not p["revision"].endswith("Revision:")


@foreign_sets
def test_import_anthropic_pairs_comparisons_from_rl_madison_file(foreign: Path, expected: int) -> None:
    madison = json.loads((foreign / ANTHROPIC.parent / "RLMadisonInstructions.json").read_text())
    comparisons = [p["comparison"] for p in import_foreign(foreign / ANTHROPIC)["principles"]]
    assert comparisons[1] == madison[1].strip().removesuffix("Options:").strip()


@foreign_sets
def test_import_anthropic_without_rl_madison_file_derives_comparisons(tmp_path: Path, foreign: Path, expected: int) -> None:
    lone = tmp_path / ANTHROPIC.name
    shutil.copy(foreign / ANTHROPIC, lone)
    data = import_foreign(lone)
    assert validation_errors(data, "imported") == []
    assert all(p["comparison"].startswith("Which response") for p in data["principles"])


@foreign_sets
def test_import_llm_swarm_yields_valid_principles(foreign: Path, expected: int) -> None:
    data = import_foreign(foreign / LLM_SWARM)
    assert validation_errors(data, "imported") == []
    assert len(data["principles"]) == expected
    assert data["principles"][0]["id"] == "llm-swarm-0"


@foreign_sets
def test_import_llm_swarm_grok_yields_2_valid_principles(foreign: Path, expected: int) -> None:
    data = import_foreign(foreign / LLM_SWARM_GROK)
    assert validation_errors(data, "imported") == []
    assert len(data["principles"]) == 2


@foreign_sets
def test_imported_constitution_loads_after_saving_as_yaml(tmp_path: Path, foreign: Path, expected: int) -> None:
    path = _write(tmp_path, import_foreign(foreign / LLM_SWARM), "imported.yaml")
    assert len(load_constitution(path).principles) == expected


def test_import_of_unknown_format_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mystery.json"
    path.write_text(json.dumps({"rules": ["be nice"]}))
    with pytest.raises(CharterError, match="mystery.json"):
        import_foreign(path)


# --- version discipline -------------------------------------------------------------------------

def test_semver_order_follows_the_spec() -> None:
    from engine.constitution import semver_key

    ordered = ["0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0", "2.0.0"]
    assert sorted(ordered, key=semver_key) == ordered
    assert semver_key("1.0.0+build.5") == semver_key("1.0.0")


def test_diff_check_version_fails_on_an_edit_without_a_bump_and_passes_with_one(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from training.cli import app

    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "constitution" / "default.yaml").read_text())
    old = _write(tmp_path, base, "old.yaml")
    edited = copy.deepcopy(base)
    edited["principles"][0]["critique"] += " Be specific."
    same_version = _write(tmp_path, edited, "same.yaml")
    bumped = _write(tmp_path, edited | {"version": "1.2.0"}, "bumped.yaml")
    lowered = _write(tmp_path, edited | {"version": "0.9.0"}, "lowered.yaml")
    restyled = tmp_path / "restyled.yaml"  # same content, other YAML style: not a change
    restyled.write_text(yaml.safe_dump(base, default_flow_style=True, width=1000))

    def check(new: Path):
        return CliRunner().invoke(app, ["constitution", "diff", str(old), str(new), "--check-version"])

    failed = check(same_version)
    assert failed.exit_code == 1 and "content changed" in failed.output and "bump `version`" in failed.output
    assert "critique changed" in failed.output  # the diff is printed first
    assert check(lowered).exit_code == 1
    assert check(bumped).exit_code == 0 and check(restyled).exit_code == 0
    assert CliRunner().invoke(app, ["constitution", "diff", str(old), str(same_version)]).exit_code == 0  # without the flag
