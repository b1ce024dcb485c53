"""Bad input: one clear error, a non-zero exit, and nothing written."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from conftest import REPO, write_recipe
from training.cli import app

runner = CliRunner()


def charter(*args: str):
    return runner.invoke(app, list(args))


def assert_refused(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_missing_prompt_column_names_the_file_and_the_columns(tmp_path, tiny_model):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"text": "hello"}) + "\n")
    recipe = write_recipe(tmp_path, tiny_model, prompts={"path": str(prompts), "column": "prompt"})
    assert_refused(charter("run", str(recipe)), "p.jsonl", "no column 'prompt'", "text")
    assert not (tmp_path / "run").exists()


def test_empty_prompt_file_is_refused(tmp_path, tiny_model):
    prompts = tmp_path / "empty.csv"
    prompts.write_text("prompt\n")
    recipe = write_recipe(tmp_path, tiny_model, prompts={"path": str(prompts)})
    assert_refused(charter("run", str(recipe)), "empty.csv", "empty")
    assert not (tmp_path / "run").exists()


def test_blank_prompt_row_is_named(tmp_path, tiny_model):
    prompts = tmp_path / "p.csv"
    prompts.write_text('prompt\nhello\n""\n')
    recipe = write_recipe(tmp_path, tiny_model, prompts={"path": str(prompts)})
    assert_refused(charter("run", str(recipe)), "p.csv", "row 2")


def test_unknown_backend_names_the_field(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, tiny_model, backend="tgi")
    assert_refused(charter("run", str(recipe)), "recipe.yaml", "backend", "'tgi'")
    assert not (tmp_path / "run").exists()


def test_unreadable_model_path_is_refused_before_writing(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, tmp_path / "no-such-model")
    assert_refused(charter("run", str(recipe)), "no-such-model", "not a folder")
    assert not (tmp_path / "run").exists()


def test_unknown_recipe_key_is_named(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, tiny_model, respond={"samples": 2})
    assert_refused(charter("run", str(recipe)), "respond", "'samples'")


def test_unknown_critique_principle_is_named(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, tiny_model, critique={"principles": ["be-nice"]})
    assert_refused(charter("run", str(recipe)), "critique.principles", "be-nice")
    assert not (tmp_path / "run").exists()


def test_constitution_validate_lists_every_error_with_its_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: one\ndescription: d\nprinciples:\n  - id: a\n    critique: c\n    comparison: q\n")
    result = charter("constitution", "validate", str(bad))
    assert result.exit_code == 1
    assert f"{bad}: principles[0].revision: missing" in result.output
    assert f"{bad}: version:" in result.output


def test_constitution_validate_and_show_accept_the_default():
    default = str(REPO / "constitution" / "default.yaml")
    assert charter("constitution", "validate", default).exit_code == 0
    shown = charter("constitution", "show", default)
    assert shown.exit_code == 0 and "sha256" in shown.output


def test_a_constitution_that_is_not_utf8_is_named_in_one_line(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert_refused(charter("constitution", "validate", str(bad)), "latin1.yaml", "not UTF-8")


def test_an_output_dir_that_cannot_be_created_is_named(tmp_path, tiny_model):
    (tmp_path / "a-file").write_text("x")
    recipe = write_recipe(tmp_path, tiny_model, output_dir=str(tmp_path / "a-file" / "run"))
    assert_refused(charter("run", str(recipe)), "a-file/run", "cannot create the run directory")


def test_a_bad_line_in_a_jsonl_prompt_file_is_named_by_number(tmp_path, tiny_model):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": oops}\n')
    recipe = write_recipe(tmp_path, tiny_model, prompts={"path": str(prompts)})
    assert_refused(charter("run", str(recipe)), "p.jsonl", "line 3", "invalid JSON")


def test_export_to_a_path_that_is_a_file_is_refused(tmp_path):
    from test_export import filtered_run

    run_dir = filtered_run(tmp_path)
    target = tmp_path / "not-a-folder"
    target.write_text("x")
    assert_refused(charter("export", str(run_dir), "--to", str(target)), "not-a-folder", "is a file")


def test_a_preference_row_whose_reply_is_a_number_is_skipped_with_its_reason(tmp_path):
    from engine.preferences import load_preferences

    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": 3, "rejected": "b"}) + "\n"
                    + json.dumps({"prompt": "q2", "chosen": "a", "rejected": "b"}) + "\n")
    loaded = load_preferences(path)
    assert loaded.pairs.height == 1 and loaded.skipped == ["row 1: chosen is int, expected text or chat messages"]
