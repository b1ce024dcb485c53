"""Judge methods other than pairwise: pointwise yes/no checks and reward-model scores.

Bookkeeping tests use a scripted fake backend (no model); the others run real tiny models.
"""

from __future__ import annotations

import re

import polars as pl
import pytest

from conftest import REPO, write_recipe
from engine.backends import OptionScores, load_backend
from engine.config import JudgeConfig, load_recipe
from engine.constitution import load_constitution
from engine.filters import apply_filters
from engine.config import FilterConfig
from engine.judges import judge_items, judge_pairs
from engine.runner import run_recipe

CONSTITUTION = load_constitution(REPO / "constitution" / "default.yaml")
MARK = "[GOOD]"
REPLY = re.compile(r"<reply>\n(.*?)\n</reply>", re.S)


class ScriptedChecker:
    """Bookkeeping-only fake backend (no model): answers Yes (log-odds +3) for a marked reply, else No (-3)."""

    name, model_id = "scripted", "scripted"

    def __init__(self, says_yes):
        self.says_yes = says_yes

    def option_token_ids(self, options):
        return list(range(len(options)))

    def score_options(self, requests):
        out = []
        for r in requests:
            assert r.options == (" Yes", " No")
            reply = REPLY.search(r.messages[-1]["content"]).group(1)
            out.append(OptionScores((-0.05, -3.05) if self.says_yes(reply) else (-3.05, -0.05)))
        return out


def marked_pairs(sides: list[str]) -> pl.DataFrame:
    a = [f"{MARK} answer {i}" if s == "a" else f"plain {i}" for i, s in enumerate(sides)]
    b = [f"plain {i}" if s == "a" else f"{MARK} answer {i}" for i, s in enumerate(sides)]
    return judge_items([f"p{i}" for i in range(len(sides))], [f"q{i}" for i in range(len(sides))], a, b)


@pytest.mark.parametrize("k", [1, 3])
def test_pointwise_chooses_the_marked_response_whatever_its_side(k):
    judged = judge_pairs(marked_pairs(["a", "b", "b", "a"]), ScriptedChecker(lambda t: MARK in t),
                         JudgeConfig(mode="pointwise", principles=k), CONSTITUTION, 0)
    assert judged["chosen"].str.starts_with(MARK).all()
    assert judged["chosen_side"].to_list() == ["a", "b", "b", "a"]
    assert judged["p_chosen"].min() > 0.99 and judged["n_principles_scored"].to_list() == [k] * 4
    assert judged["swap_consistent"].is_null().all() and (judged["principle_agreement"] == 1.0).all()


def test_pointwise_gives_one_half_when_both_responses_score_the_same():
    judged = judge_pairs(marked_pairs(["a", "b"]), ScriptedChecker(lambda t: True),
                         JudgeConfig(mode="pointwise", principles=2), CONSTITUTION, 0)
    assert judged["p_a"].to_list() == pytest.approx([0.5, 0.5])


def test_pointwise_asks_each_principles_check_after_the_reply():
    seen = []

    class Recording(ScriptedChecker):
        def score_options(self, requests):
            seen.extend(requests)
            return super().score_options(requests)

    judge_pairs(marked_pairs(["a"]), Recording(lambda t: True), JudgeConfig(mode="pointwise", principles=0), CONSTITUTION, 0)
    assert len(seen) == 2 * len(CONSTITUTION.principles)
    checks = {p.check for p in CONSTITUTION.principles}
    for request in seen:
        text = request.messages[-1]["content"]
        question = text.rsplit("</reply>", 1)[1]
        assert any(check in question for check in checks)
    prefixes = {r.messages[-1]["content"].rsplit("</reply>", 1)[0] for r in seen}
    assert len(prefixes) == 2  # every question asked of one reply shares everything before it


def test_pointwise_pairs_pass_the_swap_filter_and_the_report_says_why(tmp_path, tiny_model):
    recipe = load_recipe(write_recipe(tmp_path, tiny_model, judge={"mode": "pointwise", "principles": 2},
                                      filter={"min_margin": 0.0, "min_principle_agreement": 0.0, "min_length_ratio": 0.0,
                                              "max_length_ratio": 1000.0, "drop_truncated": False,
                                              "near_duplicate_threshold": None}))
    run_recipe(recipe)
    judged = pl.read_parquet(tmp_path / "run" / "judged.parquet")
    assert set(judged["judge_mode"]) == {"pointwise"} and judged["swap_consistent"].is_null().all()
    result = apply_filters(judged, FilterConfig(min_margin=0.0, min_principle_agreement=0.0, drop_truncated=False,
                                                min_length_ratio=0.0, max_length_ratio=1000.0, near_duplicate_threshold=None))
    assert result.report["dropped"]["swap_inconsistent"] == 0
    assert result.report["not_applicable"]["swap_inconsistent"] == judged.height


def test_pointwise_on_vllm_matches_transformers(tiny_model, transformers_backend, vllm_backend):
    cfg = JudgeConfig(mode="pointwise", principles=2)
    items = marked_pairs(["a", "b"])
    a = judge_pairs(items, transformers_backend, cfg, CONSTITUTION, 0)
    b = judge_pairs(items, vllm_backend, cfg, CONSTITUTION, 0)
    assert a["p_a"].to_list() == pytest.approx(b["p_a"].to_list(), abs=1e-4)


@pytest.fixture(scope="session")
def tiny_reward_model(tiny_model, tmp_path_factory):
    """A sequence-classification head on the tiny Llama, its weights set so longer replies score higher."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path_factory.mktemp("rm") / "tiny-rm"
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_reward_model_mode_labels_by_reward_difference(tiny_reward_model):
    import math

    backend = load_backend("reward_model", str(tiny_reward_model), {"batch_size": 2})
    items = judge_items(["p0", "p1", "p2"], ["hi", "what is 2+2?", "tell me a joke"], ["hello there", "4", "no"],
                        ["hey", "five", "why did the chicken cross the road"])
    judged = judge_pairs(items, backend, JudgeConfig(mode="reward_model", model=str(tiny_reward_model)), CONSTITUTION, 0)
    conversations = [[{"role": "user", "content": p}] for p in items["prompt"]]
    r_a = backend.score_replies(conversations, items["response_a"].to_list())
    r_b = backend.score_replies(conversations, items["response_b"].to_list())
    expected = [1 / (1 + math.exp(b - a)) for a, b in zip(r_a, r_b)]
    assert judged["p_a"].to_list() == pytest.approx(expected, abs=1e-6)
    assert judged["principle_agreement"].is_null().all() and judged["swap_consistent"].is_null().all()
    assert set(judged["judge_mode"].to_list() if "judge_mode" in judged.columns else ["reward_model"]) == {"reward_model"}


def test_a_run_with_a_reward_model_judge_exports_pairs_without_principles(tmp_path, tiny_model, tiny_reward_model):
    recipe = load_recipe(write_recipe(tmp_path, tiny_model, judge={"mode": "reward_model", "model": str(tiny_reward_model)},
                                      filter={"min_margin": 0.0, "min_length_ratio": 0.0, "max_length_ratio": 1000.0,
                                              "drop_truncated": False, "near_duplicate_threshold": None},
                                      export={"test_size": 0.0}))
    result = run_recipe(recipe)
    judged = pl.read_parquet(tmp_path / "run" / "judged.parquet")
    assert set(judged["judge_backend"]) == {"reward_model"} and set(judged["judge_mode"]) == {"reward_model"}
    records = pl.read_parquet(tmp_path / "run" / "export" / "parquet" / "train.parquet")
    assert records.height == result.stages["kept"].rows > 0
    assert records["principle_ids"].list.len().max() == 0


def test_reward_model_mode_without_a_model_is_refused(tmp_path, tiny_model):
    from engine.errors import CharterError

    with pytest.raises(CharterError, match="judge.model: missing"):
        load_recipe(write_recipe(tmp_path, tiny_model, judge={"mode": "reward_model"}))


@pytest.mark.parametrize("name", ["demo.yaml", "e2e-tiny.yaml", "e2e-smollm2.yaml", "iterate.yaml"])
def test_shipped_run_recipes_are_valid(name):
    recipe = load_recipe(REPO / "data" / "recipes" / name)
    assert recipe.judge is not None


def test_the_iterate_recipe_resumes_the_demo_and_relabels_with_a_reward_model():
    demo, again = load_recipe(REPO / "data" / "recipes" / "demo.yaml"), load_recipe(REPO / "data" / "recipes" / "iterate.yaml")
    same = ("output_dir", "model", "backend", "backend_options", "seed", "prompts", "respond", "critique", "constitution")
    assert all(getattr(demo, f) == getattr(again, f) for f in same)
    assert again.judge.mode == "reward_model" and again.judge.backend_kind(again.backend) == "reward_model"
    from training.config import load_train_config

    assert load_train_config(REPO / "data" / "recipes" / "iterate-reward.yaml").reward.output_dir == again.judge.model
