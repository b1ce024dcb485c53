"""Registries: a backend registered from a test module works in `charter run`, `judge-eval` and `eval`
with no other change; unknown kinds and modes are named; options are checked by the backend itself."""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import REPO, write_recipe
from engine.backends import UNAVAILABLE, Completion, OptionScores, backend_kinds, load_backend, register_backend
from engine.errors import CharterError
from training.cli import app


@dataclass(frozen=True)
class ScriptedOptions:
    reply: str = "a scripted reply"


class ScriptedBackend:
    """Bookkeeping-only fake backend (no model): fixed replies; the option it scores highest is the last one."""

    name = "scripted"
    Options = ScriptedOptions

    def __init__(self, model_path: str, options: ScriptedOptions, seed: int):
        self.model_id, self.options = f"scripted:{model_path}", options

    def generate(self, requests):
        return [Completion(f"{self.options.reply} {i}", "stop", 3, 4) for i, _ in enumerate(requests)]

    def option_token_ids(self, options):
        return list(range(len(options)))

    def score_options(self, requests):
        return [OptionScores(tuple(-float(len(r.options) - i) for i in range(len(r.options)))) for r in requests]


register_backend("scripted", ScriptedBackend)
runner = CliRunner()


def test_a_registered_backend_is_listed_and_built_with_its_own_options(tiny_model):
    assert "scripted" in backend_kinds()
    backend = load_backend("scripted", str(tiny_model), {"reply": "hi"})
    assert backend.generate([None])[0].text == "hi 0"


def test_options_of_another_backend_are_refused_by_name(tiny_model):
    with pytest.raises(CharterError, match=r"unknown option\(s\) batch_size; allowed: reply"):
        load_backend("scripted", str(tiny_model), {"batch_size": 4})
    with pytest.raises(CharterError, match=r"batch_size: 'many' is not a int"):
        load_backend("transformers", str(tiny_model), {"batch_size": "many"})


def test_charter_run_uses_a_registered_backend(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, tiny_model, backend="scripted", backend_options={"reply": "from the registry"},
                          judge={"principles": 1})
    result = runner.invoke(app, ["run", str(recipe)])
    assert result.exit_code == 0, result.output
    judged = pl.read_parquet(tmp_path / "run" / "judged.parquet")
    assert set(judged["judge_backend"]) == {"scripted"}
    assert judged["response_a"].str.starts_with("from the registry").all()


def test_judge_eval_uses_a_registered_backend(tmp_path, tiny_model):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": "good", "rejected": "bad answer"}) + "\n" for i in range(3)))
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["judge-eval", "--pairs", str(pairs), "--backend", "scripted", "--model", str(tiny_model),
                                 "--principles", "1", "--report", str(report)])
    assert result.exit_code == 0, result.output
    out = json.loads(report.read_text())
    assert out["judge"]["backend"] == "scripted" and out["pairs_scored"] == 3


def test_charter_eval_judges_with_a_registered_backend(tmp_path, tiny_model):
    out = tmp_path / "eval"
    result = runner.invoke(app, ["eval", "--policy", str(tiny_model), "--reference", str(tiny_model), "--limit", "2",
                                 "--judge-backend", "scripted", "--max-tokens", "4", "--out", str(out),
                                 "--prompts", str(REPO / "data" / "prompts" / "redteam.jsonl")])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "policy_eval.json").read_text())["judge"].startswith("scripted:")


def test_unknown_judge_mode_is_named(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, tiny_model, judge={"mode": "telepathy"})
    result = runner.invoke(app, ["run", str(recipe)])
    assert result.exit_code == 1 and "unknown judge mode 'telepathy'" in result.output and "pairwise" in result.output


class FlakyBackend(ScriptedBackend):
    """Bookkeeping-only fake backend: while `down`, every request fails as a served backend's would."""

    name = "flaky"
    down = True

    def generate(self, requests):
        if FlakyBackend.down:
            return [Completion("", "error", 0, 0, error=UNAVAILABLE + "connection refused") for _ in requests]
        return super().generate(requests)

    def score_options(self, requests):
        if FlakyBackend.down:
            return [OptionScores(None, UNAVAILABLE + "HTTP 503 after 4 retries") for _ in requests]
        return super().score_options(requests)


register_backend("flaky", FlakyBackend)


def test_rows_that_failed_for_want_of_a_server_are_redone_by_the_next_run(tmp_path, tiny_model):
    from engine.config import load_recipe
    from engine.runner import run_recipe

    recipe = load_recipe(write_recipe(tmp_path, tiny_model, backend="flaky", backend_options={}, judge={"principles": 1}))
    FlakyBackend.down = True
    first = run_recipe(recipe)
    assert first.stages["responses"].errors == 6 and first.stages["responses"].rows == 0
    FlakyBackend.down = False
    second = run_recipe(recipe)
    assert second.stages["responses"].rows == 6 and second.stages["responses"].errors == 0
    FlakyBackend.down = True  # the judge's server goes down: its pairs stay to do
    store_dir = tmp_path / "run"
    for shard in (store_dir / "shards" / "judged").glob("*.parquet"):
        shard.unlink()
    third = run_recipe(recipe)
    assert third.stages["judged"].errors == 6 and third.stages["judged"].rows == 0
    FlakyBackend.down = False
    fourth = run_recipe(recipe)
    assert fourth.stages["judged"].rows == 6 and fourth.stages["judged"].items_done_before == 0
    assert "error" not in pl.read_parquet(store_dir / "judged.parquet").columns
