"""`charter constitution preview`: one principle's critique and revision on a few responses, old beside new."""

from __future__ import annotations

import copy

import yaml
from typer.testing import CliRunner

from conftest import REPO, write_recipe
from engine.config import load_recipe
from engine.runner import run_recipe
from training.cli import app

DEFAULT = REPO / "constitution" / "default.yaml"


def preview(*args):
    return CliRunner().invoke(app, ["constitution", "preview", *map(str, args)], terminal_width=200)


def edited_constitution(tmp_path):
    data = yaml.safe_load(DEFAULT.read_text())
    new = copy.deepcopy(data)
    new["principles"][0]["critique"] = "Point out [bold]every[/bold] factual error in the last reply."
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(new))
    return path, new["principles"][0]["id"]


def test_preview_from_prompts_is_deterministic_and_shows_old_beside_new(tmp_path, tiny_model):
    new, pid = edited_constitution(tmp_path)
    prompts = REPO / "data" / "prompts" / "demo.jsonl"
    args = (new, "--principle", pid, "--against", DEFAULT, "--prompts", prompts, "--n", 2, "--model", tiny_model,
            "--max-tokens", 8)
    first, second = preview(*args), preview(*args)
    assert first.exit_code == 0, first.output
    tables = [out.output[out.output.index("┏"):] for out in (first, second)]  # after the model-loading progress bars
    assert tables[0] == tables[1]  # greedy and seeded: the same text twice
    assert "response 1 of 2" in first.output and "response 2 of 2" in first.output
    assert "(old)" in first.output
    for name in ("prompt", "response", "critique", "revision"):
        assert name in first.output


def test_preview_from_a_run_samples_its_stored_responses(tmp_path, tiny_model):
    result = run_recipe(load_recipe(write_recipe(tmp_path, tiny_model)))
    new, pid = edited_constitution(tmp_path)
    shown = preview(new, "--principle", pid, "--run", result.run_dir, "--n", 3, "--model", tiny_model, "--max-tokens", 8)
    assert shown.exit_code == 0, shown.output
    assert "response 3 of 3" in shown.output and "(old)" not in shown.output


def test_preview_errors_name_what_is_wrong(tmp_path, tiny_model):
    new, _ = edited_constitution(tmp_path)
    unknown = preview(new, "--principle", "no-such-id", "--prompts", REPO / "data" / "prompts" / "demo.jsonl")
    assert unknown.exit_code == 1 and "no principle 'no-such-id'" in unknown.output
    neither = preview(new, "--principle", "x")
    assert neither.exit_code == 1 and "exactly one of --prompts FILE or --run RUN_DIR" in neither.output
