"""Export: TRL conversational records with provenance, a seeded split by prompt, a dataset card, SFT data;
TRL's DPOTrainer and RewardTrainer train on the export unchanged; the runner filters and exports."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml
from datasets import load_dataset, load_from_disk
from typer.testing import CliRunner

from conftest import REPO, write_recipe
from training.cli import app
from engine.config import ExportConfig, FilterConfig, load_recipe
from engine.errors import CharterError
from engine.export import export_dataset, export_run, export_sft, push_to_hub
from engine.filters import apply_filters, filter_run
from engine.runner import run_recipe
from test_filters import SHA, judged, pair

QUESTIONS = [
    "How do I bake bread?", "What is a prime number?", "Why is the sky blue?", "How do plants grow?",
    "What causes rain?", "How do magnets work?", "Why do cats purr?", "What is gravity?",
]
MANIFEST = {
    "charter_version": "0.1.0",
    "recipe": {"name": "unit", "prompts": {"path": "data/prompts/demo.jsonl", "source": "demo"}, "judge": {"principles": 2}},
    "constitution": {"name": "charter-default", "version": "1.0.0", "sha256": SHA},
    "model": {"name": "policy"},
    "backend": "transformers",
}


def kept_pairs(pairs_per_prompt: int = 2) -> tuple[pl.DataFrame, dict]:
    rows = [
        pair(10 * q + k, prompt_id=f"prompt-{q}", prompt=question, response_a=f"Plain answer {k}.", response_b=f"Kind answer {k}.")
        for q, question in enumerate(QUESTIONS) for k in range(pairs_per_prompt)
    ]
    result = apply_filters(judged(*rows), FilterConfig())
    assert result.kept.height == len(rows)
    return result.kept, result.report


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    kept, report = kept_pairs()
    out = tmp_path_factory.mktemp("export")
    export_dataset(kept, report, MANIFEST, out, test_size=0.25, seed=3)
    return out


def test_records_are_trl_conversational_pairs_with_provenance(exported):
    train = load_from_disk(str(exported / "dataset"))["train"]
    row = train[0]
    assert row["prompt"] == [{"role": "user", "content": row["prompt"][0]["content"]}]
    assert [m["role"] for m in row["chosen"]] == [m["role"] for m in row["rejected"]] == ["assistant"]
    assert row["chosen"][0]["content"].startswith("Kind answer")  # chosen_side b in the hand-built rows
    assert {"pair_id", "p_chosen", "margin", "swap_consistent", "principle_agreement", "principle_ids",
            "constitution_version", "constitution_sha256", "model", "judge_model"} <= set(train.column_names)
    assert row["principle_ids"] == ["harm", "honesty"]  # judged principles from the votes, once each


def test_parquet_files_load_with_load_dataset_and_match_save_to_disk(exported):
    files = {split: str(exported / "parquet" / f"{split}.parquet") for split in ("train", "test")}
    from_parquet = load_dataset("parquet", data_files=files)
    from_disk = load_from_disk(str(exported / "dataset"))
    for split in files:
        assert from_parquet[split].features == from_disk[split].features
        assert from_parquet[split]["pair_id"] == from_disk[split]["pair_id"]


def test_split_is_by_prompt_so_no_prompt_is_in_both(exported):
    data = load_from_disk(str(exported / "dataset"))
    train, test = set(data["train"]["prompt_id"]), set(data["test"]["prompt_id"])
    assert len(test) == 2 and not train & test  # 25% of 8 prompts
    assert data["train"].num_rows + data["test"].num_rows == 16


def test_split_is_seeded(tmp_path):
    kept, report = kept_pairs()
    tests = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        tests.append(sorted(export_dataset(kept, report, MANIFEST, tmp_path / name, seed=seed)["test"]["pair_id"]))
    assert tests[0] == tests[1] != tests[2]


def test_two_rows_of_one_prompt_still_give_a_one_row_test_split(tmp_path):
    kept, report = kept_pairs()
    data = export_dataset(kept.filter(pl.col("prompt_id") == "prompt-0"), report, MANIFEST, tmp_path, test_size=0.1)
    assert (data["train"].num_rows, data["test"].num_rows) == (1, 1)


def test_dataset_card_has_a_hub_header_and_says_how_the_data_was_made(exported):
    card = (exported / "README.md").read_text()
    _, header, body = card.split("---\n", 2)
    meta = yaml.safe_load(header)
    assert meta["license"] == "other" and "text-generation" in meta["task_categories"]
    default = meta["configs"][0]
    assert default["data_files"] == [{"split": "train", "path": "parquet/train*.parquet"},
                                     {"split": "test", "path": "parquet/test*.parquet"}]
    assert meta["dataset_info"][0]["splits"] == [{"name": "train", "num_examples": 12}, {"name": "test", "num_examples": 4}]
    assert SHA in body and "charter-default" in body and "`policy`" in body and "`judge`" in body
    assert "| weak_preference | 0 |" in body and "**16**" in body
    assert "inherit the license" in body and "demo" in body
    assert "principles: 2" in body  # the recipe, as YAML


def test_a_record_that_breaks_the_schema_stops_the_export_naming_its_pair(tmp_path):
    kept, report = kept_pairs()
    broken = kept.with_columns(pl.when(pl.col("pair_id") == "pair-000").then(1.7).otherwise(pl.col("p_chosen")).alias("p_chosen"))
    with pytest.raises(CharterError, match="pair pair-000: p_chosen"):
        export_dataset(broken, report, MANIFEST, tmp_path)


def test_dpo_trainer_trains_on_the_export_unchanged(exported, tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    data = load_dataset("parquet", data_files={"train": str(exported / "parquet" / "train.parquet")})["train"]
    args = DPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, bf16=False, use_cpu=True,
                     report_to=[], max_length=64, save_strategy="no")
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model), args=args, train_dataset=data,
                         processing_class=AutoTokenizer.from_pretrained(tiny_model))
    assert trainer.train().global_step == 1


def test_reward_trainer_trains_on_the_export_unchanged(exported, tiny_model, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    args = RewardConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, bf16=False, use_cpu=True,
                        report_to=[], max_length=64, save_strategy="no")
    trainer = RewardTrainer(model=model, args=args, train_dataset=load_from_disk(str(exported / "dataset"))["train"],
                            processing_class=tokenizer)
    assert trainer.train().global_step == 1


def candidate_pairs() -> pl.DataFrame:
    frame = judged(*(pair(i, prompt_id=f"prompt-{i}", prompt=q) for i, q in enumerate(QUESTIONS)))
    return frame.with_columns(
        pl.format("rev-{}", pl.col("pair_id")).alias("response_b_id"), pl.lit(1).alias("rounds"),
        pl.when(pl.col("pair_id") == "pair-001").then(pl.lit("length")).otherwise(pl.col("response_b_finish_reason"))
        .alias("response_b_finish_reason"),
        pl.when(pl.col("pair_id") == "pair-002").then(pl.lit("  ")).otherwise(pl.col("response_b")).alias("response_b"),
    )


def test_sft_export_is_prompt_to_final_revision_as_messages(tmp_path):
    data = export_sft(candidate_pairs(), tmp_path, test_size=0.25, seed=0)
    reloaded = load_from_disk(str(tmp_path / "sft" / "dataset"))
    row = reloaded["train"][0]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    assert row["messages"][1]["content"].startswith("The revised answer")
    ids = set(reloaded["train"]["revision_id"]) | set(reloaded["test"]["revision_id"])
    assert len(ids) == 6 and not ids & {"rev-pair-001", "rev-pair-002"}  # truncated and empty revisions left out
    parquet = load_dataset("parquet", data_files=str(tmp_path / "sft" / "parquet" / "train.parquet"))["train"]
    assert parquet.num_rows == data["train"].num_rows


def filtered_run(tmp_path) -> tuple:
    run = tmp_path / "run"
    run.mkdir()
    kept, _ = kept_pairs()
    pl.concat([kept, judged(pair(99, margin=0.0, p_chosen=0.5))], how="vertical").write_parquet(run / "judged.parquet")
    candidate_pairs().write_parquet(run / "pairs.parquet")
    (run / "manifest.json").write_text(json.dumps(MANIFEST))
    filter_run(run)
    return run


def test_export_run_writes_pairs_sft_and_card_and_replaces_a_previous_export_whole(tmp_path):
    run = filtered_run(tmp_path)
    out = export_run(run, ExportConfig())
    assert out == run / "export"
    first = (out / "README.md").read_text()
    assert "config_name: sft" in first and "| weak_preference | 1 |" in first
    export_run(run, ExportConfig(test_size=0.5, sft=False))
    assert not (out / "sft").exists()
    assert load_from_disk(str(out / "dataset"))["test"].num_rows == 8
    assert [p.name for p in run.iterdir() if p.name.startswith(".partial")] == []


def test_export_refuses_to_replace_a_folder_that_is_not_an_export(tmp_path):
    run = filtered_run(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(CharterError, match="not a charter export"):
        export_run(run, to=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_charter_export_cli_writes_to_the_given_folder(tmp_path):
    run = filtered_run(tmp_path)
    result = CliRunner().invoke(app, ["export", str(run), "--to", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert load_from_disk(str(tmp_path / "out" / "dataset"))["train"].num_rows > 0


def test_charter_export_before_filter_says_what_to_run(tmp_path):
    result = CliRunner().invoke(app, ["export", str(tmp_path)])
    assert result.exit_code == 1 and "charter filter" in result.output


def test_push_to_hub_refuses_when_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CharterError, match="HF_HUB_OFFLINE"):
        push_to_hub(tmp_path, "someone/pairs")


def test_filter_or_export_without_a_judge_section_is_refused(tmp_path, tiny_model):
    with pytest.raises(CharterError, match="judge"):
        load_recipe(write_recipe(tmp_path, tiny_model, export={}))


def test_an_unknown_filter_key_in_a_recipe_is_named(tmp_path, tiny_model):
    with pytest.raises(CharterError, match="min_margins"):
        load_recipe(write_recipe(tmp_path, tiny_model, judge={}, filter={"min_margins": 0.2}))


def test_a_recipe_with_filter_and_export_sections_runs_them_after_the_judge(tmp_path, tiny_model):
    lenient = {"swap_mode": "share", "min_swap_consistency": 0.0, "min_principle_agreement": 0.0, "min_margin": 0.0,
               "drop_truncated": False, "min_length_ratio": 0.0, "max_length_ratio": 1000.0}
    recipe = load_recipe(write_recipe(
        tmp_path, tiny_model, prompts={"path": str(REPO / "data" / "prompts" / "demo.jsonl"), "limit": 3},
        critique={"rounds": 1, "sampling": {"temperature": 0.0, "max_tokens": 8}}, judge={"principles": 1},
        filter=lenient, export={"test_size": 0.5},
    ))
    result = run_recipe(recipe)
    report = json.loads((result.run_dir / "filter_report.json").read_text())
    assert report["input"] == 3 and report["kept"] + sum(report["dropped"].values()) == 3
    assert result.stages["kept"].rows == report["kept"]
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    data = load_from_disk(manifest["export"] + "/dataset")
    assert data["train"].num_rows + data["test"].num_rows == report["kept"]
    assert (result.run_dir / "export" / "sft" / "dataset").is_dir()


def test_an_export_of_zero_pairs_loads_as_an_empty_dataset_whose_card_says_why(tmp_path):
    kept, report = kept_pairs()
    empty = kept.head(0)
    export_dataset(empty, {**report, "kept": 0}, MANIFEST, tmp_path, test_size=0.1)
    data = load_from_disk(str(tmp_path / "dataset"))
    assert data["train"].num_rows == 0 and data["test"].num_rows == 0
    assert {"prompt", "chosen", "rejected", "p_chosen"} <= set(data["train"].column_names)
    assert "No pair survived the filters" in (tmp_path / "README.md").read_text()


def test_a_run_over_a_single_prompt_exports_pairs_and_sft_data(tmp_path, tiny_model):
    lenient = {"swap_mode": "share", "min_swap_consistency": 0.0, "min_principle_agreement": 0.0, "min_margin": 0.0,
               "drop_truncated": False, "min_length_ratio": 0.0, "max_length_ratio": 1000.0}
    recipe = load_recipe(write_recipe(
        tmp_path, tiny_model, prompts={"path": str(REPO / "data" / "prompts" / "demo.jsonl"), "limit": 1},
        respond={"n": 2, "sampling": {"temperature": 1.0, "max_tokens": 8}},
        critique={"rounds": 1, "sampling": {"temperature": 0.0, "max_tokens": 8}}, judge={"principles": 1},
        filter=lenient, export={"test_size": 0.5},
    ))
    result = run_recipe(recipe)
    sft = load_from_disk(str(result.run_dir / "export" / "sft" / "dataset"))
    pairs = load_from_disk(str(result.run_dir / "export" / "dataset"))
    assert sft["train"].num_rows + sft["test"].num_rows == 2
    assert pairs["train"].num_rows + pairs["test"].num_rows == result.stages["kept"].rows


def test_the_dataset_card_holds_no_absolute_path_of_this_machine(tmp_path):
    kept, report = kept_pairs()
    manifest = {**MANIFEST, "model": {"name": str(tmp_path / "models" / "policy")},
                "recipe": {**MANIFEST["recipe"], "output_dir": str(tmp_path / "run"), "source_path": str(tmp_path / "r.yaml"),
                           "prompts": {"path": str(REPO / "data" / "prompts" / "demo.jsonl")}}}
    export_dataset(kept, report, manifest, tmp_path / "out", test_size=0.25)
    card = (tmp_path / "out" / "README.md").read_text()
    assert str(tmp_path) not in card and str(REPO) not in card
    assert "models/policy" in card and "demo.jsonl" in card


def test_an_export_streamed_in_many_batches_and_shards_holds_the_same_rows(tmp_path, monkeypatch):
    import engine.dataset_writer
    import engine.parquet_batches

    kept, report = kept_pairs(pairs_per_prompt=3)
    whole = export_dataset(kept, report, MANIFEST, tmp_path / "whole", test_size=0.25, seed=3)
    monkeypatch.setattr(engine.parquet_batches, "BATCH_BYTES", 2_000)
    monkeypatch.setattr(engine.dataset_writer, "MAX_SHARD_BYTES", 1)  # a new shard for every batch
    kept.write_parquet(tmp_path / "kept.parquet")
    batched = export_dataset(tmp_path / "kept.parquet", report, MANIFEST, tmp_path / "batched", test_size=0.25, seed=3)
    for split in ("train", "test"):
        assert batched[split].to_list() == whole[split].to_list()
        parquet = load_dataset("parquet", data_files=str(tmp_path / "batched" / "parquet" / f"{split}.parquet"))["train"]
        assert parquet.to_list() == whole[split].to_list()
    assert len(list((tmp_path / "batched" / "dataset" / "train").glob("data-*-of-*.arrow"))) > 1


def test_a_record_that_breaks_the_schema_in_a_later_batch_still_stops_the_export(tmp_path, monkeypatch):
    import engine.parquet_batches

    kept, report = kept_pairs()
    last = kept["pair_id"][-1]
    broken = kept.with_columns(pl.when(pl.col("pair_id") == last).then(1.7).otherwise(pl.col("p_chosen")).alias("p_chosen"))
    monkeypatch.setattr(engine.parquet_batches, "BATCH_BYTES", 2_000)
    with pytest.raises(CharterError, match=f"pair {last}: p_chosen"):
        export_dataset(broken, report, MANIFEST, tmp_path)
