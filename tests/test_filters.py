"""Quality filters: each filter on hand-built judged rows whose fate is known, the report, and `charter filter`."""

from __future__ import annotations

import json
import random

import jsonschema
import polars as pl
import pytest
from typer.testing import CliRunner

from training.cli import app
from engine.config import FilterConfig
from engine.errors import CharterError
from engine.record_schema import RECORD_SCHEMA, pair_records
from engine.dedup import connected_components
from engine.filters import REASONS, apply_filters, drop_schema_invalid
from engine.store import RunStore

SHA = "0123456789abcdef" * 4
VOCAB = [a + b for a in ("ka", "lo", "mi", "nu", "pe", "ro", "su", "ti", "va", "ze") for b in "bdgmnrstxz"]
VOTE = pl.Struct({"principle_id": pl.String, "order": pl.String, "p_first": pl.Float64, "error": pl.String})
SCHEMA = {
    "pair_id": pl.String, "prompt_id": pl.String, "prompt": pl.String, "response_a": pl.String, "response_b": pl.String,
    "response_a_finish_reason": pl.String, "response_b_finish_reason": pl.String, "chosen": pl.String,
    "rejected": pl.String, "chosen_side": pl.String, "p_a": pl.Float64, "p_chosen": pl.Float64, "margin": pl.Float64,
    "swap_consistent": pl.Boolean, "swap_consistency": pl.Float64, "principle_agreement": pl.Float64,
    "n_principles_scored": pl.Int64, "votes": pl.List(VOTE), "judge_injection_suspect": pl.Boolean,
    "judge_error": pl.String, "principle_ids": pl.List(pl.String), "constitution_version": pl.String,
    "constitution_sha256": pl.String, "model": pl.String, "judge_model": pl.String, "pair_kind": pl.String,
}


def prompt_text(seed: int, words: int = 25) -> str:
    return " ".join(random.Random(seed).sample(VOCAB, words))


def pair(i: int, **changes) -> dict:
    """A judged pair that every filter keeps, with `changes` applied (chosen/rejected follow chosen_side)."""
    row = {
        "pair_id": f"pair-{i:03d}", "prompt_id": f"prompt-{i:03d}", "prompt": prompt_text(i),
        "response_a": f"The original answer number {i}, short and plain.",
        "response_b": f"The revised answer number {i}, careful and kind.",
        "response_a_finish_reason": "stop", "response_b_finish_reason": "stop", "chosen_side": "b",
        "p_a": 0.2, "p_chosen": 0.8, "margin": 0.3, "swap_consistent": True, "swap_consistency": 1.0,
        "principle_agreement": 1.0, "n_principles_scored": 2,
        "votes": [{"principle_id": p, "order": o, "p_first": 0.2 if o == "ab" else 0.8, "error": None}
                  for p in ("harm", "honesty") for o in ("ab", "ba")],
        "judge_injection_suspect": False, "judge_error": None, "principle_ids": ["harm"],
        "constitution_version": "1.0.0", "constitution_sha256": SHA, "model": "policy", "judge_model": "judge",
        "pair_kind": "original-vs-revision",
    }
    row.update(changes)
    a, b = row["response_a"], row["response_b"]
    row.setdefault("chosen", b if row["chosen_side"] == "b" else a)
    row.setdefault("rejected", a if row["chosen_side"] == "b" else b)
    if "chosen" not in changes and row["chosen_side"] is None:
        row["chosen"] = row["rejected"] = None
    return row


def judged(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=SCHEMA)


def fate(frame: pl.DataFrame, cfg: FilterConfig = FilterConfig()) -> dict[str, str | None]:
    """pair_id -> drop reason (None when kept)."""
    result = apply_filters(frame, cfg)
    reasons = dict(result.dropped.select("pair_id", "drop_reason").iter_rows())
    return {pid: reasons.get(pid) for pid in frame["pair_id"]}


def test_a_clean_pair_is_kept():
    assert fate(judged(pair(1))) == {"pair-001": None}


def test_unscored_pairs_are_dropped_as_judge_error():
    unscored = pair(2, chosen_side=None, p_a=None, p_chosen=None, margin=None, swap_consistent=None,
                    swap_consistency=None, principle_agreement=None, judge_error="prompt too long")
    result = apply_filters(judged(pair(1), unscored), FilterConfig())
    assert result.dropped.row(0, named=True)["drop_reason"] == "judge_error"
    assert "prompt too long" in result.dropped.row(0, named=True)["drop_detail"]


def test_swap_inconsistent_pairs_are_dropped_when_all_principles_must_agree():
    flipped = pair(2, swap_consistent=False, swap_consistency=0.5)
    assert fate(judged(pair(1), flipped)) == {"pair-001": None, "pair-002": "swap_inconsistent"}


def test_share_mode_keeps_pairs_whose_consistent_share_reaches_the_minimum():
    cfg = FilterConfig(swap_mode="share", min_swap_consistency=0.75)
    rows = judged(pair(1, swap_consistent=False, swap_consistency=0.75), pair(2, swap_consistent=False, swap_consistency=0.5))
    assert fate(rows, cfg) == {"pair-001": None, "pair-002": "swap_inconsistent"}


def test_principle_disagreement_below_the_minimum_is_dropped():
    rows = judged(pair(1, principle_agreement=0.75), pair(2, principle_agreement=0.5))
    assert fate(rows) == {"pair-001": None, "pair-002": "principle_disagreement"}


def test_weak_preferences_below_the_margin_are_dropped():
    rows = judged(pair(1, p_chosen=0.6, margin=0.1), pair(2, p_chosen=0.55, margin=0.05))
    assert fate(rows) == {"pair-001": None, "pair-002": "weak_preference"}


def test_empty_or_whitespace_sides_are_degenerate():
    rows = judged(pair(1, response_b="   \n"), pair(2, response_a=""))
    result = apply_filters(rows, FilterConfig())
    details = dict(result.dropped.select("pair_id", "drop_detail").iter_rows())
    assert set(result.dropped["drop_reason"]) == {"degenerate"}
    assert details == {"pair-001": "empty chosen", "pair-002": "empty rejected"}


def test_sides_identical_after_stripping_are_degenerate():
    rows = judged(pair(1, response_a="Same words.", response_b="  Same words.\n"))
    assert fate(rows) == {"pair-001": "degenerate"}


def test_truncation_is_read_from_the_chosen_sides_own_finish_reason():
    chosen_cut = pair(1, chosen_side="a", response_a_finish_reason="length")
    rejected_cut = pair(2, chosen_side="a", response_b_finish_reason="length")
    result = apply_filters(judged(chosen_cut, rejected_cut), FilterConfig())
    details = dict(result.dropped.select("pair_id", "drop_detail").iter_rows())
    assert details == {"pair-001": "chosen truncated at max_tokens", "pair-002": "rejected truncated at max_tokens"}


def test_truncated_pairs_are_kept_when_drop_truncated_is_off():
    rows = judged(pair(1, response_b_finish_reason="length"))
    assert fate(rows, FilterConfig(drop_truncated=False)) == {"pair-001": None}


def test_length_ratio_outside_the_range_is_length_bias():
    long = pair(1, response_b="A much longer revised answer. " * 10)
    short = pair(2, response_b="Ok.", response_a="The original answer, which is long enough to matter here.")
    result = apply_filters(judged(long, short, pair(3)), FilterConfig())
    assert fate(judged(long, short, pair(3))) == {"pair-001": "length_bias", "pair-002": "length_bias", "pair-003": None}
    assert "outside [0.5, 2.0]" in result.dropped["drop_detail"][0]


def test_injection_suspects_are_dropped_unless_kept():
    rows = judged(pair(1, judge_injection_suspect=True))
    assert fate(rows) == {"pair-001": "judge_injection"}
    assert fate(rows, FilterConfig(keep_injection_suspects=True)) == {"pair-001": None}


def test_a_row_failing_several_filters_gets_the_first_reason_in_order():
    rows = judged(pair(1, margin=0.01, p_chosen=0.51, judge_injection_suspect=True, response_b="x" * 500))
    assert fate(rows) == {"pair-001": "weak_preference"}


def test_a_paraphrase_differing_by_a_few_words_is_a_near_duplicate_and_the_smallest_prompt_id_stays():
    words = prompt_text(7, 30).split()
    paraphrase = " ".join(["Please"] + words[:10] + ["kindly"] + words[11:25] + ["zz", "qq"] + words[27:]) + "?"
    rows = judged(pair(1, prompt=prompt_text(7, 30)), pair(2, prompt=paraphrase), pair(3))
    result = apply_filters(rows, FilterConfig())
    assert fate(rows) == {"pair-001": None, "pair-002": "near_duplicate_prompt", "pair-003": None}
    assert result.dropped["drop_detail"][0] == "near-duplicate of prompt prompt-001"


def test_distinct_prompts_sharing_some_words_are_all_kept():
    rows = judged(*(pair(i) for i in range(40)))
    assert set(fate(rows).values()) == {None}


def test_prompts_without_word_characters_take_part_in_dedup_without_error():
    rows = judged(pair(1, prompt="👌🏾👍🏾"), pair(2, prompt="?!"), pair(3), pair(4, prompt=prompt_text(3)))
    assert fate(rows) == {"pair-001": None, "pair-002": "near_duplicate_prompt", "pair-003": None,
                          "pair-004": "near_duplicate_prompt"}


def test_several_pairs_of_one_prompt_are_not_near_duplicates():
    same = [pair(i, prompt_id="prompt-same", prompt=prompt_text(99)) for i in range(4)]
    assert set(fate(judged(*same, pair(5))).values()) == {None}


def test_a_paraphrase_is_kept_when_the_prompt_it_echoes_was_dropped_for_another_reason():
    words = prompt_text(7).split()
    paraphrase = " ".join(words[:12] + ["kindly"] + words[13:])
    rows = judged(pair(1, prompt=prompt_text(7), margin=0.0, p_chosen=0.5), pair(2, prompt=paraphrase))
    assert fate(rows) == {"pair-001": "weak_preference", "pair-002": None}


def test_near_duplicates_are_found_among_many_distinct_prompts():
    base = [pair(i) for i in range(300)]
    echoes = []
    for k, i in enumerate(range(0, 300, 10)):  # 30 paraphrases: one word changed, one appended
        words = base[i]["prompt"].split()
        words[5] = "changed"
        echoes.append(pair(300 + k, prompt=" ".join(words) + " please"))
    result = apply_filters(judged(*base, *echoes), FilterConfig())
    dropped = set(result.dropped.filter(pl.col("drop_reason") == "near_duplicate_prompt")["pair_id"])
    assert dropped == {e["pair_id"] for e in echoes}
    assert result.report["diversity"]["near_duplicate_clusters"] == 30


SEMANTIC = [  # 0 and 1 mean the same with few shared words; 2 and 3 are unrelated to them and each other
    "How do I bake sourdough bread at home?",
    "What is the way to make sourdough bread in my own kitchen?",
    "How can I get into my neighbour's house while they are away?",
    "Explain photosynthesis to a ten-year-old.",
]


def test_embedding_similarity_catches_a_paraphrase_that_word_ngrams_miss():
    rows = judged(*(pair(i + 1, prompt=text) for i, text in enumerate(SEMANTIC)))
    assert set(fate(rows).values()) == {None}  # lexical dedup alone keeps all four
    result = apply_filters(rows, FilterConfig(embedding_threshold=0.8))
    assert fate(rows, FilterConfig(embedding_threshold=0.8)) == {
        "pair-001": None, "pair-002": "near_duplicate_prompt", "pair-003": None, "pair-004": None}
    assert result.report["diversity"]["similar_pairs"] == {"lexical": 0, "embedding": 1}


def test_embeddings_are_unit_length_and_similar_pairs_are_each_found_once():
    import numpy as np

    from engine.embeddings import embed_texts, similar_pairs

    vectors = embed_texts(SEMANTIC * 2, batch_size=3, progress=False)  # each text twice, batches of mixed lengths
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[:4], vectors[4:], atol=1e-5)  # batching and padding do not change an embedding
    u, v = similar_pairs(vectors, 0.8, block=3)  # block smaller than the table: pairs across blocks still found
    found = sorted(zip(u.tolist(), v.tolist()))
    assert found == [(0, 1), (0, 4), (0, 5), (1, 4), (1, 5), (2, 6), (3, 7), (4, 5)]


def test_an_unknown_embedding_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CharterError, match="not an encoder folder"):
        apply_filters(judged(pair(1), pair(2)), FilterConfig(embedding_threshold=0.9, embedding_model=str(tmp_path)))


def test_components_label_every_node_with_its_smallest_connected_node():
    import numpy as np

    labels = connected_components(6, np.array([5, 3, 4]), np.array([3, 1, 4]))
    assert labels.tolist() == [0, 1, 2, 1, 4, 1]


def test_a_p_chosen_above_one_is_schema_invalid_and_names_pair_and_field():
    result = apply_filters(judged(pair(1), pair(2, p_chosen=1.7)), FilterConfig())
    row = result.dropped.row(0, named=True)
    assert (row["pair_id"], row["drop_reason"]) == ("pair-002", "schema_invalid")
    assert "pair-002" in row["drop_detail"] and "p_chosen" in row["drop_detail"]


def test_an_empty_constitution_hash_is_schema_invalid_and_names_pair_and_field():
    result = apply_filters(judged(pair(1, constitution_sha256="")), FilterConfig())
    assert result.dropped["drop_reason"].to_list() == ["schema_invalid"]
    assert "pair-001" in result.dropped["drop_detail"][0] and "constitution_sha256" in result.dropped["drop_detail"][0]


@pytest.mark.parametrize("change", [
    {"p_chosen": 1.7}, {"p_chosen": 0.3}, {"margin": -0.1}, {"principle_agreement": 1.5}, {"constitution_sha256": ""},
    {"constitution_sha256": "XYZ"}, {"constitution_version": "v1"}, {"model": ""}, {"judge_model": None},
    {"prompt": ""}, {"pair_id": ""}, {"votes": []}, {"chosen": ""}, {}, {"p_chosen": 0.5, "margin": 0.0},
])
def test_the_polars_schema_check_agrees_with_jsonschema(change):
    frame = judged(pair(1, **change))
    records = pair_records(frame)
    by_jsonschema = jsonschema.Draft202012Validator(json.loads(RECORD_SCHEMA.read_text())).is_valid(records.row(0, named=True))
    check = drop_schema_invalid(records.schema)
    by_polars = not frame.select(check.drops).item()
    assert by_polars == by_jsonschema


def test_report_counts_follow_filter_order_and_add_up_to_the_input():
    rows = judged(pair(1), pair(2, margin=0.0, p_chosen=0.5), pair(3, judge_injection_suspect=True), pair(4, p_chosen=1.7))
    report = apply_filters(rows, FilterConfig()).report
    assert list(report["dropped"]) == list(REASONS)
    assert report["kept"] + sum(report["dropped"].values()) == report["input"] == 4
    dropped = report["dropped"]
    assert (dropped["weak_preference"], dropped["judge_injection"], dropped["schema_invalid"]) == (1, 1, 1)


def test_report_describes_distributions_before_and_after_and_prompt_diversity():
    report = apply_filters(judged(pair(1), pair(2, margin=0.0, p_chosen=0.5)), FilterConfig()).report
    assert set(report["distributions"]["input"]["margin"]) == {"min", "p25", "median", "p75", "max", "mean"}
    assert report["distributions"]["kept"]["margin"]["min"] == 0.3
    assert report["chosen_longer_share"]["input"] is not None
    assert report["diversity"]["prompts_checked"] == 1
    assert 0 < report["diversity"]["distinct_2gram_ratio"]["checked"] <= 1


def test_a_judged_table_without_required_columns_is_refused():
    with pytest.raises(CharterError, match="margin"):
        apply_filters(judged(pair(1)).drop("margin"), FilterConfig())


def test_charter_filter_writes_kept_dropped_and_report_using_the_runs_recipe(tmp_path):
    store = RunStore(tmp_path / "run")
    store.write_manifest({"recipe": {"filter": {"min_margin": 0.35}}})
    pl.DataFrame(judged(pair(1), pair(2, margin=0.4, p_chosen=0.9))).write_parquet(store.table_path("judged"))
    result = CliRunner().invoke(app, ["filter", str(store.root)])
    assert result.exit_code == 0, result.output
    assert "weak_preference" in result.output
    assert pl.read_parquet(store.table_path("kept"))["pair_id"].to_list() == ["pair-002"]
    assert pl.read_parquet(store.table_path("dropped"))["drop_reason"].to_list() == ["weak_preference"]
    assert json.loads((store.root / "filter_report.json").read_text())["kept"] == 1


def test_a_bad_filter_section_in_the_manifest_is_one_clear_error(tmp_path):
    store = RunStore(tmp_path / "run")
    store.write_manifest({"recipe": {"filter": {"min_margins": 0.3}}})
    judged(pair(1)).write_parquet(store.table_path("judged"))
    result = CliRunner().invoke(app, ["filter", str(store.root)])
    assert result.exit_code == 1
    assert "min_margins" in result.output and "Traceback" not in result.output
