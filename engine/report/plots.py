"""Plots as static SVG drawn by matplotlib, to inline in the page: no JavaScript, readable in any browser or mail.

Figures are built with `matplotlib.figure.Figure` (no pyplot, no GUI backend). Callers hand over binned
or sampled data only, so a plot's size does not grow with the run. Text in a plot stays text (`svg.fonttype:
none`) and is never read as math (`text.parse_math: False`), so a principle id with `$` in it shows as
written. Each figure gets its own id salt: several SVGs in one page must not share clip-path ids.
"""

from __future__ import annotations

import io
import itertools
import re
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np

from engine.report.page import Html

KEPT, DROPPED, ACCENT, WARN, MUTED = "#2e8b57", "#9aa5ad", "#2f6f9f", "#d9822b", "#5f6b73"
STYLE = {
    "svg.fonttype": "none", "text.parse_math": False, "font.size": 9, "font.family": "DejaVu Sans",
    "axes.spines.top": False, "axes.spines.right": False, "axes.titlesize": 10, "axes.titleweight": "bold",
    "axes.edgecolor": "#8a949b", "axes.grid": True, "grid.color": "#e6e9eb", "grid.linewidth": 0.6,
    "axes.axisbelow": True, "legend.frameon": False, "legend.fontsize": 8,
}
_salts = itertools.count()
_NOISE = (re.compile(r"<\?xml.*?\?>\s*", re.S), re.compile(r"<!DOCTYPE.*?>\s*", re.S),
          re.compile(r"<metadata>.*?</metadata>\s*", re.S))
_GROUP_ID = re.compile(r'<g id="[^"]*">')  # matplotlib's figure_1, axes_1, ...: the same in every figure
DATA = "data"  # gid of the artists that draw data; they become <g class="data"> (what a test looks for)


@contextmanager
def plot(width: float = 7.5, height: float = 2.8, ncols: int = 1, nrows: int = 1, label: str = "plot") -> Iterator:
    """Yield (figure, axes) under the report's style; the caller draws, `svg(figure, label)` renders."""
    import matplotlib
    from cycler import cycler
    from matplotlib.figure import Figure

    style = STYLE | {"axes.prop_cycle": cycler(color=[ACCENT, WARN, KEPT, "#8e5ea2", MUTED]),
                     "svg.hashsalt": f"charter-{next(_salts)}"}
    with matplotlib.rc_context(style):
        figure = Figure(figsize=(width, height), layout="constrained")
        yield figure, figure.subplots(nrows, ncols, squeeze=False).ravel()


def svg(figure, label: str) -> Html:
    """The figure as an inline <svg> element (no XML prolog, no metadata; its natural size, shrunk by CSS on a narrow
    screen), labelled for screen readers."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, dpi=150)  # dpi: rasterized parts only
    text = buffer.getvalue()
    for noise in _NOISE:
        text = noise.sub("", text)
    text = _GROUP_ID.sub("<g>", text.replace(f'<g id="{DATA}">', f'<g class="{DATA}">'))
    label = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return Html(text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1))


def data(*artists) -> None:
    """Mark what draws the data (bars, lines, points), as opposed to axes, grid and labels."""
    for artist in artists:
        for one in artist if isinstance(artist, (list, tuple)) or hasattr(artist, "patches") else [artist]:
            one.set_gid(DATA)


def histogram(ax, values: np.ndarray, bins: np.ndarray, color: str = ACCENT, label: str | None = None) -> None:
    """Counts per bin drawn as bars: the SVG holds one bar per bin, whatever the number of values."""
    counts, edges = np.histogram(values[~np.isnan(values)], bins=bins)
    data(ax.stairs(counts, edges, fill=True, color=color, alpha=0.85, label=label))


def hbars(ax, labels: Sequence[str], values: Sequence[float], color: str | Sequence[str] = ACCENT,
          fmt: str = "{:,.0f}", xmax: float | None = None) -> None:
    """Horizontal bars top to bottom in the given order, each with its value written after it."""
    y = np.arange(len(labels))
    data(ax.barh(y, values, color=color, height=0.65))
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    top = xmax if xmax is not None else max([float(v) for v in values] + [1.0])
    ax.set_xlim(0, top * 1.15)
    if all(isinstance(v, (int, np.integer)) for v in values):  # counts: no tick at 0.5 of a pair
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for yi, v in zip(y, values):
        ax.text(float(v) + top * 0.01, yi, fmt.format(v), va="center", fontsize=8)


def vbars(ax, labels: Sequence[str], values: Sequence[float | None], colors: Sequence[str] | str = ACCENT,
          fmt: str = "{:.1%}", ylim: tuple[float, float] | None = (0, 1)) -> None:
    """Vertical bars with their value on top; a missing value (None) is left out and marked n/a."""
    x = np.arange(len(labels))
    shown = [np.nan if v is None else float(v) for v in values]
    data(ax.bar(x, np.nan_to_num(shown), color=colors, width=0.6))
    ax.set_xticks(x, labels)
    ax.grid(axis="x", visible=False)
    low, high = ylim if ylim is not None else ax.get_ylim()
    ax.set_ylim(low, high + (high - low) * 0.15)  # room for the value labels under the title
    if ylim == (0, 1):
        ax.set_yticks(np.linspace(0, 1, 6))
    for xi, v in zip(x, shown):
        ax.text(xi, (v if not np.isnan(v) else 0) + (high - low) * 0.02, "n/a" if np.isnan(v) else fmt.format(v),
                ha="center", va="bottom", fontsize=8)


def empty(ax, message: str) -> None:
    """An axis that says why it has nothing to draw (e.g. a check that does not apply to this judge)."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", color=MUTED, wrap=True, transform=ax.transAxes)
