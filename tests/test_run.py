"""`charter run` end to end on the tiny model: tables, contracts, resume and selective redo."""

from __future__ import annotations

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from conftest import REPO, write_recipe
from engine.config import load_recipe
from engine.constitution import load_constitution
from engine.runner import run_recipe
from training.cli import app
from training.pipeline import run_and_train

PROVENANCE = {"model", "backend", "config_hash", "constitution_version", "constitution_sha256"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("run")
    recipe = load_recipe(
        write_recipe(
            folder, tiny_model, respond={"n": 2, "sampling": {"temperature": 0.0, "max_tokens": 8}}, judge={"principles": 2}
        )
    )
    result = run_recipe(recipe)
    return recipe, result


def test_responses_follow_the_stage_contract(finished_run):
    _, result = finished_run
    responses = pl.read_parquet(result.run_dir / "responses.parquet")
    assert {"prompt_id", "response_id", "response", "model", "sampling", "seed"} | PROVENANCE <= set(responses.columns)
    assert responses.height == 12  # 6 prompts x n=2
    assert responses["response_id"].n_unique() == 12


def test_revisions_chain_each_round_on_the_previous_revision(finished_run):
    _, result = finished_run
    revisions = pl.read_parquet(result.run_dir / "revisions.parquet").sort("response_id", "round")
    assert set(revisions["round"]) == {1, 2}
    for group in revisions.partition_by("response_id"):
        first, second = group.row(0, named=True), group.row(1, named=True)
        assert second["critiqued_text"] == first["revision"]
    responses = pl.read_parquet(result.run_dir / "responses.parquet")
    round1 = revisions.filter(pl.col("round") == 1).join(responses, on="response_id")
    assert (round1["critiqued_text"] == round1["response"]).all()


def test_revisions_record_principles_from_the_constitution(finished_run):
    recipe, result = finished_run
    revisions = pl.read_parquet(result.run_dir / "revisions.parquet")
    constitution = load_constitution(recipe.constitution)
    assert set(revisions["principle_id"]) <= set(constitution.ids)
    assert (revisions["constitution_sha256"] == constitution.sha256).all()
    assert (revisions["constitution_version"] == constitution.version).all()


def test_pairs_put_the_original_against_the_final_revision(finished_run):
    _, result = finished_run
    pairs = pl.read_parquet(result.run_dir / "pairs.parquet")
    revisions = pl.read_parquet(result.run_dir / "revisions.parquet").filter(pl.col("round") == 2)
    joined = pairs.join(revisions, left_on="response_b_id", right_on="revision_id")
    assert joined.height == pairs.height == 12
    assert (joined["response_b"] == joined["revision"]).all()
    assert (pairs["pair_kind"] == "original-vs-revision").all()


def test_judged_pairs_are_oriented_by_the_judge_with_every_vote_kept(finished_run):
    _, result = finished_run
    judged = pl.read_parquet(result.run_dir / "judged.parquet")
    assert judged.height == 12
    assert {"chosen", "rejected", "p_chosen", "swap_consistent", "principle_agreement", "margin", "votes"} <= set(judged.columns)
    assert (judged["votes"].list.len() == 4).all()  # 2 principles x 2 orders
    a_side = judged.filter(pl.col("chosen_side") == "a")
    assert (a_side["chosen"] == a_side["response_a"]).all()
    b_side = judged.filter(pl.col("chosen_side") == "b")
    assert (b_side["chosen"] == b_side["response_b"]).all()
    assert (judged["p_chosen"] >= 0.5).all()


def test_manifest_records_recipe_constitution_versions_and_stage_counts(finished_run):
    _, result = finished_run
    import json

    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["stages"]["responses"]["rows"] == 12
    assert manifest["stages"]["revisions"]["rows"] == 24
    assert manifest["constitution"]["sha256"]
    assert manifest["packages"]["torch"]
    assert manifest["recipe"]["critique"]["rounds"] == 2


def test_rerunning_the_same_recipe_does_no_new_work(finished_run):
    recipe, result = finished_run
    before = pl.read_parquet(result.run_dir / "pairs.parquet")
    again = run_recipe(recipe)
    assert all(s.items_done_before == s.items for s in again.stages.values())
    assert pl.read_parquet(result.run_dir / "pairs.parquet").equals(before)


def test_editing_the_constitution_redoes_critique_and_pairs_but_not_responses(tmp_path, tiny_model):
    edited = yaml.safe_load((REPO / "constitution" / "default.yaml").read_text())
    constitution_path = tmp_path / "c.yaml"
    constitution_path.write_text(yaml.safe_dump(edited))
    path = write_recipe(tmp_path, tiny_model, constitution=str(constitution_path))
    first = run_recipe(load_recipe(path))
    edited["principles"][0]["critique"] += " Be brief."
    edited["version"] = "1.0.1"
    constitution_path.write_text(yaml.safe_dump(edited))
    second = run_recipe(load_recipe(path))
    assert second.stages["responses"].items_done_before == first.stages["responses"].items
    assert second.stages["revisions"].items_done_before == 0
    assert second.stages["pairs"].items_done_before == 0
    assert set(pl.read_parquet(second.run_dir / "pairs.parquet")["constitution_version"]) == {"1.0.1"}
    seen = second.manifest["constitutions_seen"]
    assert [c["version"] for c in seen] == [first.manifest["constitution"]["version"], "1.0.1"]
    assert first.manifest["constitutions_seen"] == [first.manifest["constitution"]]
    shown = CliRunner().invoke(app, ["show", str(second.run_dir)])
    assert shown.exit_code == 0 and "has seen 2 constitutions" in shown.output and seen[0]["sha256"][:12] in shown.output


def test_changing_critique_rounds_keeps_responses(tmp_path, tiny_model):
    first = run_recipe(load_recipe(write_recipe(tmp_path, tiny_model)))
    second = run_recipe(load_recipe(write_recipe(tmp_path, tiny_model, critique={"rounds": 1})))
    assert second.stages["responses"].items_done_before == first.stages["responses"].items
    assert second.stages["revisions"].items_done_before == 0
    assert pl.read_parquet(second.run_dir / "revisions.parquet")["round"].max() == 1


@pytest.mark.vllm
def test_vllm_backend_runs_the_whole_recipe(tmp_path, tiny_model, vllm_backend):
    recipe = load_recipe(write_recipe(tmp_path, tiny_model, backend="vllm", backend_options={}))
    result = run_recipe(recipe, backend=vllm_backend)
    pairs = pl.read_parquet(result.run_dir / "pairs.parquet")
    assert pairs.height == 6
    assert set(pairs["backend"]) == {"vllm"}
    assert pairs["response_a"].str.len_chars().min() > 0


def test_e2e_tiny_recipe_trains_and_writes_its_eval_report(tmp_path, monkeypatch):
    """The shipped recipe, end to end: respond -> ... -> export -> reward + DPO -> policy eval."""
    import json

    monkeypatch.setenv("CHARTER_CACHE", str(tmp_path / "cache"))
    raw = yaml.safe_load((REPO / "data" / "recipes" / "e2e-tiny.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "run")
    raw["prompts"]["path"] = str(REPO / raw["prompts"]["path"])
    raw["prompts"]["limit"] = 6
    for section in ("reward", "dpo"):
        raw["train"][section]["output_dir"] = str(tmp_path / "train" / section)
    raw["evaluate"]["harmless"] = str(REPO / "data" / "prompts" / "helpful.jsonl")
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = run_and_train(load_recipe(path))
    assert result.stages["kept"].rows == 12
    assert (tmp_path / "train" / "reward" / "config.json").is_file()
    report = json.loads((tmp_path / "train" / "dpo" / "eval" / "policy_eval.json").read_text())
    assert report["prompts"] >= 1 and "kl_to_reference" in report and "monitors" in report
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["train"]["eval"]["win_rate"] is not None


@pytest.mark.vllm
def test_a_successful_vllm_run_ends_without_engine_shutdown_warnings(tmp_path, tiny_model):
    """The engine is stopped in order at the end, so vLLM has no process to force-kill at exit."""
    import subprocess
    import sys

    pytest.importorskip("vllm")
    recipe = write_recipe(tmp_path, tiny_model, backend="vllm",
                          backend_options={"enforce_eager": True, "max_model_len": 512, "kv_cache_gib": 1},
                          prompts={"path": str(REPO / "data" / "prompts" / "demo.jsonl"), "limit": 2})
    done = subprocess.run([sys.executable, "-m", "training.cli", "run", str(recipe)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    noise = [line for line in done.stderr.splitlines() if "[shutdown]" in line or "exited unexpectedly" in line]
    assert noise == []
