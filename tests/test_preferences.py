"""Human preference files: HH-RLHF transcripts and prompt/chosen/rejected tables."""

from __future__ import annotations

import gzip
import json

import polars as pl
import pytest

from conftest import REPO, SHARED
from engine.errors import CharterError
from engine.judge_eval import length_baseline
from engine.preferences import load_preferences, split_hh_pair

HH = SHARED / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"  # development-only; used when present
OURS = REPO / "data" / "eval" / "preferences.jsonl"


def as_hh_transcripts(path, out):
    """Our preference file rewritten in HH-RLHF's format: gzipped JSONL of two full transcripts per row."""
    names = {"user": "Human", "assistant": "Assistant"}
    with open(path) as f, gzip.open(out, "wt") as g:
        for line in f:
            row = json.loads(line)
            turns = row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}]
            shared = "".join(f"\n\n{names[t['role']]}: {t['content']}" for t in turns)
            g.write(json.dumps({"chosen": f"{shared}\n\nAssistant: {row['chosen']}",
                                "rejected": f"{shared}\n\nAssistant: {row['rejected']}"}) + "\n")
    return out


def test_multi_turn_transcript_splits_at_the_last_assistant_turn():
    shared = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how do I bake bread?"
    conversation, chosen, rejected = split_hh_pair(shared + "\n\nAssistant: Mix flour.", shared + "\n\nAssistant: No.")
    assert conversation == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "how do I bake bread?"},
    ]
    assert (chosen, rejected) == ("Mix flour.", "No.")


def test_rows_whose_prefixes_differ_are_reported_not_dropped_silently(tmp_path):
    path = tmp_path / "hh.jsonl.gz"
    rows = [
        {"chosen": "\n\nHuman: a\n\nAssistant: x", "rejected": "\n\nHuman: a\n\nAssistant: y"},
        {"chosen": "\n\nHuman: a\n\nAssistant: x", "rejected": "\n\nHuman: DIFFERENT\n\nAssistant: y"},
    ]
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n")
    loaded = load_preferences(path)
    assert loaded.pairs.height == 1
    assert loaded.skipped == ["row 2: chosen and rejected differ before the last Assistant turn"]


def test_prompt_chosen_rejected_tables_load_in_string_and_conversational_form(tmp_path):
    path = tmp_path / "p.parquet"
    pl.DataFrame({"prompt": ["q1"], "chosen": ["good"], "rejected": ["bad"]}).write_parquet(path)
    assert load_preferences(path).pairs.select("prompt", "response_a", "response_b").row(0) == ("q1", "good", "bad")
    path = tmp_path / "c.jsonl"
    row = {
        "prompt": [{"role": "user", "content": "q2"}],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
    }
    path.write_text(json.dumps(row) + "\n")
    assert load_preferences(path).pairs.select("prompt", "response_a", "response_b").row(0) == ("q2", "good", "bad")


def test_a_file_without_chosen_and_rejected_is_refused(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"prompt": "q", "answer": "a"}) + "\n")
    with pytest.raises(CharterError, match="row 1: missing column"):
        load_preferences(path)


def test_an_hh_format_file_reads_natively_with_a_seeded_sample(tmp_path):
    files = [(as_hh_transcripts(OURS, tmp_path / "ours-hh.jsonl.gz"), 200)] + ([(HH, 2312)] if HH.is_file() else [])
    for path, rows in files:
        full = load_preferences(path)
        assert full.rows_read == rows
        assert full.pairs.height + len(full.skipped) == rows
        sample = load_preferences(path, limit=50, seed=3)
        assert sample.pairs.height + len(sample.skipped) == 50
        assert sample.pairs["pair_id"].equals(load_preferences(path, limit=50, seed=3).pairs["pair_id"])
        assert sample.pairs["conversation"].list.len().min() >= 1
    multi_turn = load_preferences(files[0][0]).pairs.filter(pl.col("conversation").list.len() > 1)
    assert multi_turn.height == 20  # the shipped file's 20 multi-turn rows keep their earlier turns


def test_the_shipped_preference_file_loads_whole_and_balanced_for_length():
    ours = load_preferences(OURS)
    assert ours.rows_read == ours.pairs.height == 200 and not ours.skipped
    assert 0.4 <= length_baseline(ours.pairs) <= 0.6  # length alone does not give the answer away


def test_length_baseline_counts_the_longer_human_chosen_response():
    frame = pl.DataFrame({"response_a": ["long answer", "x", "same"], "response_b": ["short", "longer", "same"]})
    assert length_baseline(frame) == pytest.approx((1 + 0 + 0.5) / 3)
