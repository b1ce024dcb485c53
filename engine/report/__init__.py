"""`charter report RUN`: one self-contained HTML page of what a run made, what its filters dropped and what
training did, written to RUN/report.html.

The page has no script and fetches nothing: plots are static SVG drawn by matplotlib from binned or sampled
values (engine/report/plots.py), inlined in the page with the texts escaped (engine/report/page.py). Each
section is a function of the run's data (engine/report/run_data.py) and appears only when that data exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from engine.report.judge_sections import judge_eval_section, judge_section
from engine.report.page import Section, code, footer_text, join, render_page
from engine.report.run_data import JUDGE_EVAL, RunData, load_run
from engine.report.run_sections import diversity_section, examples_section, funnel_section, length_section, run_section
from engine.report.training_section import training_section
from engine.store import write_text_atomic

REPORT_FILE = "report.html"
SECTIONS: tuple[Callable[[RunData], Section | None], ...] = (
    run_section, funnel_section, judge_section, length_section, diversity_section, examples_section, judge_eval_section,
    training_section,
)

__all__ = ["JUDGE_EVAL", "REPORT_FILE", "SECTIONS", "run_report_html", "write_html", "write_run_report"]


def run_report_html(data: RunData) -> str:
    sections = [s for s in (make(data) for make in SECTIONS) if s is not None]
    m = data.manifest
    name = (m.get("recipe") or {}).get("name") or data.root.name
    constitution = m.get("constitution") or {}
    c = data.counts
    made = (f"{c['judged']:,} judged pairs, {c['kept']:,} kept" if data.filtered else f"{c['judged']:,} judged pairs"
            if "judged" in c else f"{c.get('pairs', 0):,} candidate pairs, not judged")
    subtitle = join([code(str(data.root)), f" · constitution {constitution.get('name', '-')} "
                                           f"{constitution.get('version', '')} · {made}"])
    return render_page(f"charter run report: {name}", subtitle, sections, footer_text())


def write_run_report(run_dir: str | Path, out: str | Path | None = None, judge_eval: str | Path | None = None) -> Path:
    """Write the run's report (default RUN/report.html); `judge_eval` is a `charter judge-eval --report` JSON to include
    (default: RUN/judge_eval.json when it exists)."""
    data = load_run(run_dir, judge_eval)
    path = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    write_html(run_report_html(data), path)
    return path


def write_html(page: str, path: Path) -> None:
    """Temp file + rename, so a reader never sees half a page; a full disk is one clear error."""
    write_text_atomic(page, path)
