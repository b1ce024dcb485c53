"""The run report (engine/report): every section the data has renders a plot in a real headless Chromium with no
console error, absent data means absent sections, and text from models and prompt files is shown, never run.

The runs are made by `run_and_train` with a scripted fake backend (bookkeeping only): fixed replies, a pairwise
judge that counts a principle's word in each reply and leans toward the first slot under one principle. Training
(reward model, DPO) and the policy evaluation run for real on the tiny test model, so the training section reads
what the trainers really write. The report and the browser are real.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from conftest import REPO, write_recipe
from engine.backends import Completion, OptionScores
from engine.config import JudgeConfig, load_recipe
from engine.constitution import load_constitution
from engine.report import write_run_report
from engine.judge_eval import reliability_bins

PAYLOAD = ('</div></pre></section><script>document.title="pwned";window.pwned=1</script>'
           '<img src=x onerror="window.pwned=2"><b id="injected">bold</b>')
WORDS = ("kind", "honest", "brief")
# prompt -> (original reply, revision): the judge counts each principle's word, so these decide every label and filter
REPLIES = {
    f"Show this verbatim: {PAYLOAD}": (f"kind reply {PAYLOAD}", f"kind kind kind honest honest honest reply {PAYLOAD}"),
    "How do I bake bread at home today?": ("kind reply about bread", "kind kind honest honest reply about bread"),
    "How do I bake bread at home quickly?": ("kind reply about loaves", "kind kind honest honest reply about loaves"),
    "Why do stars twinkle at night?": ("brief reply on stars", "honest honest kind kind reply on stars"),
    "What is a river delta?": ("kind honest reply on deltas", "kind honest brief brief reply on deltas"),
    "Name three owls.": ("plain reply on owls", "plain reply on owls!"),
    "Draw a map of a town.": ("map reply", "kind kind honest honest map reply " + "with many more words " * 12),
    "Explain engines simply.": ("engine reply", "kind kind honest honest engine reply, cut off"),
    "How do tides work?": ("kind kind reply on tides", "honest brief reply on tides"),
}
FILTER = {"swap_mode": "share", "min_swap_consistency": 0.6, "min_principle_agreement": 0.6, "min_margin": 0.1,
          "near_duplicate_threshold": 0.5}
BLOCK = re.compile(r"<response_(\w)>\n(.*?)\n</response_\1>", re.S)
QUESTION = re.compile(r"Which reply is more (\w+)\?")
SECTIONS = ("run", "funnel", "judge", "length", "diversity", "examples", "judge-eval", "training")


class ScriptedPolicyAndJudge:
    """Bookkeeping-only fake backend (no model): fixed replies; a pairwise judge that counts the principle's word."""

    name, model_id = "scripted", "scripted"

    def generate(self, requests):
        out = []
        for r in requests:
            prompt = next((m["content"] for m in r.messages if m["role"] == "user" and m["content"] in REPLIES), None)
            last = r.messages[-1]["content"]
            if prompt is None or last.startswith("CRITIQUE"):
                out.append(Completion("noted", "stop", 10, 2))
                continue
            text = REPLIES[prompt][last.startswith("REVISE")]
            out.append(Completion(text, "length" if text.endswith("cut off") else "stop", 10, 8))
        return out

    def option_token_ids(self, options):
        return list(range(len(options)))

    def score_options(self, requests):
        out = []
        for r in requests:
            content = r.messages[-1]["content"]
            word = QUESTION.search(content).group(1)
            (_, first), (_, second) = BLOCK.findall(content)
            lean = 0.5 if word == "brief" else 0.0  # this principle prefers the first slot a little
            d = 2.0 * (first.split().count(word) - second.split().count(word)) + lean
            out.append(OptionScores((-math.log1p(math.exp(-d)), -math.log1p(math.exp(d)))))
        return out


def write_constitution(folder: Path) -> Path:
    principles = [{"id": w, "critique": f"CRITIQUE the reply for {w}.", "revision": f"REVISE the reply to be {w}.",
                   "comparison": f"Which reply is more {w}?"} for w in WORDS]
    path = folder / "words.yaml"
    path.write_text(yaml.safe_dump({"name": "words", "version": "1.0.0", "description": "test", "principles": principles}))
    return path


def make_run(folder: Path, model: Path, judged: bool) -> Path:
    from training.pipeline import run_and_train

    prompts = folder / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in REPLIES))
    extra = {"judge": {"principles": 0}, "filter": FILTER, "export": {"test_size": 0.25}} if judged else {}
    if judged:
        steps = {"model": str(model), "max_steps": 2, "batch_size": 2, "max_length": 128, "logging_steps": 1}
        extra["train"] = {"seed": 0, "reward": {**steps, "output_dir": str(folder / "reward")},
                          "dpo": {**steps, "output_dir": str(folder / "dpo")}}
        extra["evaluate"] = {"limit": 2, "principles": 1, "max_tokens": 8,
                             "harmless": str(REPO / "data" / "prompts" / "helpful.jsonl")}
    recipe = write_recipe(folder, model, constitution=str(write_constitution(folder)), critique={"rounds": 1},
                          prompts={"path": str(prompts), "column": "prompt"}, **extra)
    run_and_train(load_recipe(recipe), backend=ScriptedPolicyAndJudge())
    return folder / "run"


@pytest.fixture(scope="module")
def judged_run(tmp_path_factory, tiny_model) -> Path:
    """A judged, filtered, exported and trained run, with a judge-eval report kept in it."""
    run = make_run(tmp_path_factory.mktemp("report"), tiny_model, judged=True)
    (run / "judge_eval.json").write_text(json.dumps(judge_eval_report(run.parent)))
    write_run_report(run)  # again, now that the run holds a judge-eval report
    return run


@pytest.fixture(scope="module")
def unjudged_run(tmp_path_factory, tiny_model) -> Path:
    return make_run(tmp_path_factory.mktemp("report-nojudge"), tiny_model, judged=False)


def judge_eval_report(folder: Path) -> dict:
    """What `charter judge-eval --report` writes (reliability bins included) for a small labelled file."""
    from engine.judge_eval import evaluate_judge
    from engine.preferences import load_preferences

    labelled = folder / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"prompt": f"question {i}", "chosen": "kind honest " * (i % 3 + 1),
                                            "rejected": "brief " * (i % 2 + 1)}) + "\n" for i in range(12)))
    result = evaluate_judge(load_preferences(labelled), ScriptedPolicyAndJudge(), JudgeConfig(principles=0),
                            load_constitution(folder / "words.yaml"), 0, str(labelled))
    assert result.report["reliability"] == reliability_bins(result.judged)
    return result.report


# --- in the browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium for the browser tests: `apt-get install -y chromium` (as root; `make test` does it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed: pip install -e '.[dev]'")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield browser
        browser.close()


def open_page(browser, path: Path, screenshot: Path):
    """The page as Chromium renders it from disk, the console errors and page errors it raised, and a screenshot."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("request", lambda r: errors.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:")) else None)
    page.goto(path.as_uri())
    page.screenshot(path=str(screenshot), full_page=True)
    return page, errors


def plotted_sections(page) -> dict[str, int]:
    """Per section, how many data-drawing elements of its plots have a visible size."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('section[data-section]')].map(s =>
        [s.dataset.section, [...s.querySelectorAll('svg g.data')].filter(g => {
            const b = g.getBBox(); return b.width + b.height > 0; }).length]))""")


def test_every_section_of_a_judged_trained_run_draws_a_plot_in_chromium(judged_run, browser, tmp_path):
    page, errors = open_page(browser, judged_run / "report.html", tmp_path / "report.png")
    drawn = plotted_sections(page)
    assert errors == []
    assert list(drawn) == list(SECTIONS)
    assert {name: n for name, n in drawn.items() if n == 0 and name != "examples"} == {}
    assert page.locator("section[data-section=examples] .example").count() >= 3
    assert (tmp_path / "report.png").stat().st_size > 10_000
    page.close()


def test_a_run_without_a_judge_has_no_judge_sections_and_no_error(unjudged_run, browser, tmp_path):
    page, errors = open_page(browser, unjudged_run / "report.html", tmp_path / "report.png")
    drawn = plotted_sections(page)
    assert errors == []
    assert list(drawn) == ["run", "funnel", "examples"]
    assert drawn["run"] > 0 and drawn["funnel"] > 0
    assert "candidate pairs, not judged" in page.inner_text("header")
    page.close()


def test_html_in_a_response_or_a_prompt_is_shown_as_text_and_runs_nothing(judged_run, browser, tmp_path):
    page, errors = open_page(browser, judged_run / "report.html", tmp_path / "report.png")
    assert errors == []
    assert page.evaluate("() => [document.title, typeof window.pwned]") == ["charter run report: t", "undefined"]
    assert page.evaluate("() => document.querySelectorAll('script, img, #injected').length") == 0
    examples = page.inner_text("section[data-section=examples]")
    assert examples.count(PAYLOAD) >= 3  # in the prompt and in both replies of the pair that holds it
    page.close()


def test_impact_html_uses_the_same_page_and_renders(judged_run, browser, tmp_path):
    from engine.impact import constitution_impact

    old = judged_run.parent / "words.yaml"
    data = yaml.safe_load(old.read_text())
    data["principles"][2]["comparison"] = "Which reply is more kind?"  # brief's question now asks about kindness
    data["version"] = "1.1.0"
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump(data))
    constitution_impact(old, new, judged_run, out_dir=tmp_path / "impact", backend=ScriptedPolicyAndJudge())
    page, errors = open_page(browser, tmp_path / "impact" / "impact.html", tmp_path / "impact.png")
    drawn = plotted_sections(page)
    assert errors == []
    assert list(drawn) == ["changes", "labels", "filters", "flips"]
    assert all(drawn[name] > 0 for name in ("changes", "labels", "filters"))
    page.close()


# --- without a browser ---------------------------------------------------------------------------------


def test_the_page_holds_no_script_and_forbids_scripts_and_requests(judged_run):
    page = (judged_run / "report.html").read_text()
    assert "<script" not in page.lower() and "<img" not in page and 'onerror="' not in page
    assert "&lt;script&gt;document.title=&quot;pwned&quot;" in page
    assert re.search(r'<meta http-equiv="Content-Security-Policy" content="default-src &#x27;none&#x27;; '
                     r'script-src &#x27;none&#x27;', page)
    assert "http://" not in page.replace("http://www.w3.org/", "") and "https://" not in page


def test_charter_run_writes_the_report_and_a_resumed_run_writes_it_again(judged_run):
    from training.pipeline import run_and_train

    report = judged_run / "report.html"
    report.unlink()
    run_and_train(load_recipe(judged_run.parent / "recipe.yaml"), backend=ScriptedPolicyAndJudge())
    page = report.read_text()
    assert 'data-section="training"' in page and 'data-section="judge-eval"' in page  # read from the run directory


def test_charter_report_cli_writes_the_page_and_takes_a_judge_eval_file(judged_run, tmp_path):
    from training.cli import app

    (tmp_path / "eval.json").write_text((judged_run / "judge_eval.json").read_text())
    out = tmp_path / "page.html"
    args = ["report", str(judged_run), "--out", str(out), "--judge-eval", str(tmp_path / "eval.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and 'data-section="judge-eval"' in out.read_text()


def test_charter_report_refuses_a_folder_that_is_no_run_and_a_bad_judge_eval_file(judged_run, tmp_path):
    from training.cli import app

    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "not a charter run directory" in result.output and "Traceback" not in result.output
    bad = tmp_path / "eval.json"
    bad.write_text(json.dumps({"accuracy": "high", "length_baseline": 0.5, "chance": 0.5}))
    result = CliRunner().invoke(app, ["report", str(judged_run), "--out", str(tmp_path / "p.html"), "--judge-eval", str(bad)])
    assert result.exit_code == 1 and "eval.json: accuracy" in result.output and "judge-eval --report" in result.output


def test_the_run_report_counts_match_the_filter_report(judged_run):
    page = (judged_run / "report.html").read_text()
    filtered = json.loads((judged_run / "filter_report.json").read_text())
    reasons = [r for r, n in filtered["dropped"].items() if n]
    assert filtered["kept"] > 0 and len(reasons) >= 3  # the scripted run exercises several filters
    examples = page[page.index('data-section="examples"'):]
    assert all(f"{reason} · pair" in examples for reason in reasons)  # one dropped example per reason


def test_reliability_bins_hold_the_share_of_picks_people_agree_with():
    judged = pl.DataFrame({"p_a": [0.52, 0.45, 0.9, 0.95, 0.08, None, 0.5]})
    bins = reliability_bins(judged, width=0.25)
    assert [(b["lo"], b["hi"], b["pairs"]) for b in bins] == [(0.5, 0.75, 3), (0.75, 1.0, 3)]
    assert bins[0]["agreement"] == pytest.approx((1 + 0 + 0.5) / 3, abs=1e-4)  # 0.45 picked the other side; 0.5 a tie
    assert bins[1]["agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert bins[1]["mean_p_chosen"] == pytest.approx((0.9 + 0.95 + 0.92) / 3, abs=1e-4)


def test_the_per_principle_table_reads_pairwise_and_pointwise_votes(tmp_path):
    from engine.report.run_data import principle_table

    def vote(principle, **fields):
        return {"principle_id": principle, "error": None, **fields}

    pairwise = pl.DataFrame({"p_a": [0.8], "votes": [[
        vote("x", order="ab", p_first=0.9), vote("x", order="ba", p_first=0.2),  # a in both orders: consistent
        vote("y", order="ab", p_first=0.6), vote("y", order="ba", p_first=0.7)]]})  # first slot twice: flipped
    pairwise.write_parquet(tmp_path / "pairwise.parquet")
    table, bias = principle_table(tmp_path / "pairwise.parquet")
    rows = {r["principle_id"]: r for r in table.iter_rows(named=True)}
    assert bias == 0.75  # 3 of the 4 votes went to the first slot
    assert (rows["x"]["prefers_revision"], rows["x"]["swap_consistency"], rows["x"]["agreement"]) == (0.0, 1.0, 1.0)
    assert (rows["y"]["prefers_revision"], rows["y"]["swap_consistency"], rows["y"]["agreement"]) == (1.0, 0.0, 0.0)
    assert rows["y"]["first_slot"] == 1.0 and rows["x"]["votes"] == 2

    pointwise = pl.DataFrame({"p_a": [0.3], "votes": [[vote("x", side="a", score=2.0), vote("x", side="b", score=0.0)]]})
    pointwise.write_parquet(tmp_path / "pointwise.parquet")
    table, bias = principle_table(tmp_path / "pointwise.parquet")
    assert bias is None and table["swap_consistency"].to_list() == [None]
    assert table.select("prefers_revision", "agreement").row(0) == (0.0, 0.0)  # x prefers a; the pair's label is b
