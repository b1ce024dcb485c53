"""`charter constitution impact`: vote reuse, flips and filter transitions for an edit, an addition and a removal.

The run is made by `run_recipe` with a scripted fake backend (bookkeeping only, no model): it writes fixed
replies, and as a pointwise judge it says Yes to "Is the reply WORD?" when WORD is in the reply, with a
weight per word. The expected labels and filter outcomes are recomputed here from that rule by hand.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from conftest import write_recipe
from engine.backends import Completion, OptionScores
from engine.config import load_recipe
from engine.errors import CharterError
from engine.impact import constitution_impact
from engine.runner import run_recipe

WEIGHT = {"kind": 1.0, "honest": 1.5, "brief": 2.0, "warm": 2.5}
# prompt -> (words of the original reply, words of its revision)
WORDS = {
    "first question about gardens": ({"kind"}, {"honest"}),
    "second question about rivers": ({"kind", "honest"}, {"brief"}),
    "third question about engines": ({"brief", "warm"}, {"kind", "honest"}),
    "fourth question about stars": ({"honest"}, {"honest", "warm"}),
    "fifth question about bread": ({"kind", "brief"}, {"warm"}),
    "sixth question about maps": ({"warm", "honest", "brief"}, {"kind", "honest", "brief"}),
    "seventh question about owls": ({"kind", "warm"}, {"brief"}),
    "eighth question about tides": ({"honest", "brief"}, {"kind"}),
}
CHECK = re.compile(r"Is the reply (\w+)\?")
REPLY = re.compile(r"<reply>\n(.*?)\n</reply>", re.S)
MIN_MARGIN, MIN_AGREEMENT = 0.1, 0.5


def reply(prompt: str, revised: bool) -> str:
    words = WORDS[prompt][revised]
    return f"{' '.join(sorted(words))} reply to the {prompt.split()[0]} one"


class ScriptedWriterAndChecker:
    """Bookkeeping-only fake backend (no model): fixed replies; pointwise log-odds +-WEIGHT[word] for 'Is the reply word?'."""

    name, model_id = "scripted", "scripted"

    def __init__(self, fail_on_score: bool = False):
        self.fail_on_score, self.scored = fail_on_score, 0

    def generate(self, requests):
        out = []
        for r in requests:
            prompt = next(m["content"] for m in r.messages if m["role"] == "user" and m["content"] in WORDS)
            last = r.messages[-1]["content"]
            text = "noted" if last.startswith("CRITIQUE") else reply(prompt, revised=last.startswith("REVISE"))
            out.append(Completion(text, "stop", 10, 5))
        return out

    def option_token_ids(self, options):
        return list(range(len(options)))

    def score_options(self, requests):
        assert not self.fail_on_score, "every vote should have been reused"
        self.scored += len(requests)
        out = []
        for r in requests:
            content = r.messages[-1]["content"]
            word, text = CHECK.search(content).group(1), REPLY.search(content).group(1)
            s = WEIGHT[word] if word in text.split() else -WEIGHT[word]
            out.append(OptionScores((s / 2 - 3, -s / 2 - 3)))
        return out


def constitution(folder: Path, name: str, checks: dict[str, str], version: str) -> Path:
    principles = [{"id": pid, "critique": f"CRITIQUE the reply for {pid}.", "revision": f"REVISE the reply for {pid}.",
                   "comparison": f"Which reply is more {pid}?", "check": f"Is the reply {word}?"} for pid, word in checks.items()]
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": "words", "version": version, "description": "test", "principles": principles}))
    return path


OLD = {"kind": "kind", "honest": "honest", "brief": "brief"}
SCENARIOS = {  # name: (principles of NEW, expected changes, votes reused per pair, votes scored per pair)
    "edit": ({"kind": "warm", "honest": "honest", "brief": "brief"}, [("kind", "edited")], 4, 2),
    "add": ({"kind": "kind", "honest": "honest", "brief": "brief", "warm": "warm"}, [("warm", "added")], 6, 2),
    "remove": ({"kind": "kind", "honest": "honest"}, [("brief", "removed")], 4, 0),
}


def expected(a: str, b: str, words: list[str]) -> tuple[str, float, str | None]:
    """Chosen side, p_a and filter reason for one pair, from the scripted rule (k = 0: every principle)."""
    def score(text, word):
        return WEIGHT[word] if word in text.split() else -WEIGHT[word]

    per = [1 / (1 + math.exp(score(b, w) - score(a, w))) for w in words]
    p = sum(per) / len(per)
    side = lambda x: (x > 0.5) - (x < 0.5)  # noqa: E731
    agreement = sum(side(x) == side(p) for x in per) / len(per)
    reason = "principle_disagreement" if agreement < MIN_AGREEMENT else "weak_preference" if abs(p - 0.5) < MIN_MARGIN else None
    return ("a" if p >= 0.5 else "b"), p, reason


@pytest.fixture(scope="module")
def words_run(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("impact")
    prompts = folder / "prompts.jsonl"
    prompts.write_text("".join(f'{{"prompt": "{p}"}}\n' for p in WORDS))
    recipe = write_recipe(
        folder, tiny_model, constitution=str(constitution(folder, "old", OLD, "1.0.0")),
        prompts={"path": str(prompts), "column": "prompt"}, critique={"rounds": 1},
        judge={"mode": "pointwise", "principles": 0},
        filter={"min_margin": MIN_MARGIN, "min_principle_agreement": MIN_AGREEMENT, "near_duplicate_threshold": None},
    )
    run_recipe(load_recipe(recipe), backend=ScriptedWriterAndChecker())
    return folder


def run_files(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_impact_reuses_unchanged_votes_and_finds_the_expected_flips(words_run, tmp_path, scenario):
    checks, changes, reused_per_pair, scored_per_pair = SCENARIOS[scenario]
    run_dir = words_run / "run"
    before = run_files(run_dir)
    old = words_run / "old.yaml"
    new = constitution(tmp_path, scenario, checks, "1.1.0")
    backend = ScriptedWriterAndChecker(fail_on_score=scored_per_pair == 0)
    result = constitution_impact(old, new, run_dir, out_dir=tmp_path / "out", backend=backend)
    r = result.report
    n = len(WORDS)

    assert run_files(run_dir) == before  # nothing in the run directory changed
    assert [(c["principle_id"], c["change"]) for c in r["changes"]] == changes
    assert r["cost"]["votes_reused"] == reused_per_pair * n
    assert r["cost"]["votes_scored"] == r["cost"]["model_calls"] == backend.scored == scored_per_pair * n

    pairs = pl.read_parquet(run_dir / "pairs.parquet")
    flips, transitions = set(), {"kept_to_dropped": {}, "dropped_to_kept": {}}
    for prompt, a, b in pairs.select("prompt", "response_a", "response_b").iter_rows():
        side_old, _, reason_old = expected(a, b, list(OLD.values()))
        side_new, p_new, reason_new = expected(a, b, list(checks.values()))
        row = result.rejudged.filter(pl.col("prompt") == prompt)
        assert row["p_a"].item() == pytest.approx(p_new) and row["chosen_side"].item() == side_new
        if side_old != side_new:
            flips.add(prompt)
        if (reason_old is None) != (reason_new is None):
            which = "kept_to_dropped" if reason_old is None else "dropped_to_kept"
            reason = reason_new or reason_old
            transitions[which][reason] = transitions[which].get(reason, 0) + 1
    assert flips and len(flips) < n  # the scenario can tell right from wrong
    assert r["labels"]["flips"] == len(flips)
    assert {f["prompt"] for f in r["top_flips"]} == flips
    assert r["labels"]["by_change"][0]["flips"] == len(flips)  # k = 0: every pair samples every principle
    assert r["filters"]["kept_to_dropped"] == transitions["kept_to_dropped"]
    assert r["filters"]["dropped_to_kept"] == transitions["dropped_to_kept"]
    assert sum(map(sum, (t.values() for t in transitions.values()))) > 0
    assert (tmp_path / "out" / "impact.md").read_text().startswith("# Constitution impact: words 1.0.0")
    assert r["new"]["sha256"] == result.rejudged["constitution_sha256"].unique().item()


def test_edit_the_judge_does_not_read_costs_nothing(words_run, tmp_path):
    """A pointwise judge reads only `check`: an edited critique request re-uses every vote."""
    old = words_run / "old.yaml"
    data = yaml.safe_load(old.read_text())
    data["principles"][0]["critique"] = "CRITIQUE the reply harder."
    data["version"] = "1.0.1"
    new = tmp_path / "critique-only.yaml"
    new.write_text(yaml.safe_dump(data))
    r = constitution_impact(old, new, words_run / "run", out_dir=tmp_path / "out",
                            backend=ScriptedWriterAndChecker(fail_on_score=True)).report
    assert r["cost"]["votes_scored"] == 0 and r["labels"]["flips"] == 0
    assert r["changes"] == [{"principle_id": "kind", "change": "edited", "fields": ["critique"], "judge_reads": False}]


def test_rescore_all_scores_every_vote_and_agrees_with_reuse(words_run, tmp_path):
    old, new = words_run / "old.yaml", constitution(tmp_path, "edit", SCENARIOS["edit"][0], "1.1.0")
    reuse = constitution_impact(old, new, words_run / "run", out_dir=tmp_path / "a", backend=ScriptedWriterAndChecker())
    full = constitution_impact(old, new, words_run / "run", out_dir=tmp_path / "b", backend=ScriptedWriterAndChecker(),
                               rescore_all=True)
    assert full.report["cost"]["votes_reused"] == 0 and full.report["cost"]["votes_scored"] == 3 * 2 * len(WORDS)
    cols = ["pair_id", "p_a", "chosen_side", "principle_agreement"]
    # equal up to float rounding: the mean over principles adds the reused and the new votes in another order
    assert_frame_equal(reuse.rejudged.select(cols).sort("pair_id"), full.rejudged.select(cols).sort("pair_id"), abs_tol=1e-12)


def test_impact_resumes_from_its_stored_votes_and_samples_with_a_seed(words_run, tmp_path):
    old, new = words_run / "old.yaml", constitution(tmp_path, "add", SCENARIOS["add"][0], "1.1.0")
    first = constitution_impact(old, new, words_run / "run", out_dir=tmp_path / "o", sample=5, seed=3,
                                backend=ScriptedWriterAndChecker())
    again = constitution_impact(old, new, words_run / "run", out_dir=tmp_path / "o", sample=5, seed=3,
                                backend=ScriptedWriterAndChecker(fail_on_score=True))
    assert first.report["cost"]["model_calls"] == 10 and again.report["cost"]["model_calls"] == 0
    assert again.report["sample"]["pairs"] == 5
    assert first.rejudged["pair_id"].to_list() == again.rejudged["pair_id"].to_list()
    assert first.report["labels"] == again.report["labels"]


def test_impact_refuses_a_constitution_the_run_did_not_use_and_an_output_inside_the_run(words_run, tmp_path):
    other = constitution(tmp_path, "other", {"warm": "warm"}, "2.0.0")
    with pytest.raises(CharterError, match=r"no judged pairs were made under .*other\.yaml.*8 pairs"):
        constitution_impact(other, other, words_run / "run", out_dir=tmp_path / "o")
    with pytest.raises(CharterError, match="inside the run directory"):
        constitution_impact(words_run / "old.yaml", other, words_run / "run", out_dir=words_run / "run" / "impact")


def test_impact_cli_prints_the_summary(words_run, tmp_path, monkeypatch):
    from engine import impact
    from training.cli import app

    real = impact.constitution_impact
    monkeypatch.setattr(impact, "constitution_impact",
                        lambda *a, **k: real(*a, **{**k, "backend": ScriptedWriterAndChecker()}))
    new = constitution(tmp_path, "edit", SCENARIOS["edit"][0], "1.1.0")
    result = CliRunner().invoke(app, ["constitution", "impact", str(words_run / "old.yaml"), str(new),
                                      "--run", str(words_run / "run"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "votes: 32 reused, 16 scored" in result.output and (tmp_path / "o" / "impact.json").is_file()


def mixed_run(words_run: Path, tmp_path: Path) -> Path:
    """A copy of the run whose judged table holds pairs of two constitutions. A re-run under a new constitution
    re-judges every pair (row keys include its hash), so the mix is made here by re-stamping half of the rows,
    as a judged table merged from two runs would be."""
    import shutil

    run = tmp_path / "mixed"
    shutil.copytree(words_run / "run", run)
    judged = pl.read_parquet(run / "judged.parquet").with_row_index("_i")
    other = pl.col("_i") % 2 == 1
    judged = judged.with_columns(pl.when(other).then(pl.lit("f" * 64)).otherwise("constitution_sha256").alias("constitution_sha256"),
                                 pl.when(other).then(pl.lit("9.9.9")).otherwise("constitution_version").alias("constitution_version"))
    judged.drop("_i").write_parquet(run / "judged.parquet")
    return run


def test_export_refuses_pairs_of_two_constitutions_unless_allowed(words_run, tmp_path):
    from engine.config import ExportConfig, FilterConfig
    from engine.export import export_run
    from engine.filters import filter_run

    run = mixed_run(words_run, tmp_path)
    report = filter_run(run, FilterConfig(min_margin=0.0, min_principle_agreement=0.0, near_duplicate_threshold=None)).report
    kept = pl.read_parquet(run / "kept.parquet")
    counts = dict(kept.group_by("constitution_sha256").len().iter_rows())
    assert len(counts) == 2 and report["kept"] == kept.height
    with pytest.raises(CharterError) as error:
        export_run(run, ExportConfig(to=str(tmp_path / "export")))
    for sha, n in counts.items():
        assert f"sha256 {sha} " in str(error.value) and f"{n} pairs" in str(error.value)
    assert "allow_mixed_constitutions" in str(error.value) and not (tmp_path / "export").exists()

    out = export_run(run, ExportConfig(to=str(tmp_path / "export"), allow_mixed_constitutions=True))
    card = (out / "README.md").read_text()
    assert "judged under 2 constitutions" in card
    for sha, n in counts.items():
        assert f"sha256 `{sha}`: {n} pairs" in card


def test_judge_sample_is_stable_when_a_principle_is_added_or_removed():
    """Adding a principle changes a pair's sample only where it enters the top k; removing one only where it was."""
    from dataclasses import replace

    from engine.constitution import load_constitution
    from engine.judges import sample_principles

    from conftest import REPO

    base = load_constitution(REPO / "constitution" / "default.yaml")
    extra = replace(base.principles[0], id="zz-extra")
    added = replace(base, principles=base.principles + (extra,))
    removed = replace(base, principles=tuple(p for p in base.principles if p.id != "privacy"))
    k, pairs = 4, [f"pair-{i}" for i in range(400)]
    entered = left = 0
    for pid in pairs:
        old = [p.id for p in sample_principles(base, k, pid, 0)]
        new = [p.id for p in sample_principles(added, k, pid, 0)]
        assert len(set(old)) == k and old[:2] == [p.id for p in sample_principles(base, 2, pid, 0)]
        if "zz-extra" in new:
            entered += 1
            assert set(new) - {"zz-extra"} < set(old)  # the extra one pushed exactly one out
        else:
            assert new == old
        without = [p.id for p in sample_principles(removed, k, pid, 0)]
        if "privacy" in old:
            left += 1
            assert set(old) - {"privacy"} < set(without)
        else:
            assert without == old
    # each of 18 principles is in a pair's top 4 with probability 4/18 (a binomial's mean 89, sd 8)
    assert 55 < entered < 125 and 55 < left < 135


def test_judge_sample_follows_principle_weights():
    from dataclasses import replace

    from engine.constitution import load_constitution
    from engine.judges import sample_principles

    from conftest import REPO

    base = load_constitution(REPO / "constitution" / "default.yaml")
    heavy = replace(base, principles=tuple(replace(p, weight=8.0) if p.id == "privacy" else p for p in base.principles))
    share = lambda c: sum("privacy" in [p.id for p in sample_principles(c, 1, f"p{i}", 0)] for i in range(2000)) / 2000  # noqa: E731
    assert share(base) < 0.1 and share(heavy) > 0.25  # 1/17 = 0.06 unweighted; with weight 8 about a third


def test_impact_writes_each_pairs_filter_outcome_before_and_after(words_run, tmp_path):
    old, new = words_run / "old.yaml", constitution(tmp_path, "edit", SCENARIOS["edit"][0], "1.1.0")
    r = constitution_impact(old, new, words_run / "run", out_dir=tmp_path / "o", backend=ScriptedWriterAndChecker()).report
    outcomes = pl.read_parquet(tmp_path / "o" / "transitions.parquet")
    assert outcomes.height == len(WORDS) and outcomes.columns == ["pair_id", "reason_before", "reason_after"]
    assert outcomes["reason_before"].null_count() == r["filters"]["kept_before"]
    assert outcomes["reason_after"].null_count() == r["filters"]["kept_after"]
