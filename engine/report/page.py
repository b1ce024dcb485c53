"""The page machinery: one self-contained HTML file of sections, tables and inline SVG figures, no script.

Everything that reaches the page goes through these helpers. Plain `str` is text and is escaped; only
`Html` (what the helpers return) is inserted as markup. So a response holding `<script>` or `</div>`
shows as those characters. The page also carries a Content-Security-Policy that allows no script and
no request, so even an escaping bug could neither run code nor call out.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import engine
from engine.validation import format_number

CSP = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; "
       "base-uri 'none'; form-action 'none'")
TEXT_LIMIT = 1500  # characters of a model's text shown per example; the rest is counted, not shown


class Html(str):
    """A string that is already markup (made by a helper below); everything else gets escaped."""


def esc(value: Any) -> Html:
    """Markup as it is, or any other value as escaped text (None shows as '-')."""
    if isinstance(value, Html):
        return value
    if value is None or isinstance(value, float):
        value = format_number(value)
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[Any]) -> Html:
    return Html("".join(esc(p) for p in parts))


def tag(name: str, content: Any = "", **attrs: Any) -> Html:
    """<name attr="...">content</name>; attribute values and text content are escaped."""
    rendered = "".join(f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items() if v is not None)
    return Html(f"<{name}{rendered}>{esc(content)}</{name}>")


def paragraph(*parts: Any, class_: str | None = None) -> Html:
    return tag("p", join(parts), class_=class_)


def code(text: Any) -> Html:
    return tag("code", text)


def number(value: Any, digits: int = 3) -> str:
    """A value as tables print it: thousands separated for counts, fixed decimals for floats, '-' for None."""
    if isinstance(value, bool) or value is None:
        return format_number(value)
    if isinstance(value, int):
        return f"{value:,}"
    return format_number(float(value), digits)


def percent(share: float | None, digits: int = 1) -> str:
    return "-" if share is None else f"{100 * share:.{digits}f}%"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None) -> Html:
    """A table; numbers are right-aligned and formatted, every cell escaped."""
    head = tag("tr", join(tag("th", h) for h in headers))
    body = join(tag("tr", join(_cell(v) for v in row)) for row in rows)
    return tag("table", join([tag("caption", caption) if caption else "", tag("thead", head), tag("tbody", body)]))


def _cell(value: Any) -> Html:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return tag("td", number(value), class_="num")
    return tag("td", value)


def key_figures(items: Sequence[tuple[str, Any]]) -> Html:
    """A row of headline numbers, each with its label under it."""
    return tag("div", join(tag("div", join([tag("b", v if isinstance(v, str) else number(v)), tag("span", label)]),
                                 class_="figure-stat") for label, v in items), class_="stats")


def figure(svg: Html, caption: str) -> Html:
    """An inline SVG plot with a caption saying how to read it."""
    return tag("figure", join([svg, tag("figcaption", caption)]), class_="plot")


def model_text(label: str, text: str | None, limit: int = TEXT_LIMIT) -> Html:
    """A prompt or a model's reply, shown as written (escaped, whitespace kept), cut at `limit` characters."""
    text = "" if text is None else str(text)
    shown = text if len(text) <= limit else text[:limit]
    more = paragraph(f"... {len(text) - limit:,} more characters not shown", class_="note") if len(text) > limit else ""
    return tag("div", join([tag("div", label, class_="label"), tag("pre", shown), more]), class_="text")


def notice(text: str) -> Html:
    return paragraph(text, class_="notice")


@dataclass(frozen=True)
class Section:
    """One part of the page: an anchor id (also its data-section name), a title, how to read it, its content."""

    id: str
    title: str
    intro: str
    body: list[Html] = field(default_factory=list)

    def render(self) -> Html:
        return tag("section", join([tag("h2", self.title), paragraph(self.intro, class_="intro"), *self.body]),
                   id=self.id, data_section=self.id)


def render_page(title: str, subtitle: Html | str, sections: Sequence[Section], footer: str) -> str:
    """The whole document: head (charset, CSP, styles), a table of contents, the sections."""
    nav = tag("nav", join(tag("a", s.title, href=f"#{s.id}") for s in sections))
    head = join([Html('<meta charset="utf-8">'), Html(f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'),
                 Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
                 tag("title", title), tag("style", Html(STYLE))])
    body = join([tag("header", join([tag("h1", title), paragraph(subtitle, class_="subtitle"), nav])),
                 tag("main", join(s.render() for s in sections)), tag("footer", footer)])
    return f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>{head}</head>\n<body>{body}</body>\n</html>\n"


def footer_text() -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Written by charter {engine.__version__} on {when}. One file, no script, no network: plots are static SVG "
            "(matplotlib).")


STYLE = """
:root { --ink: #1d2327; --muted: #5f6b73; --line: #dfe3e6; --accent: #2f6f9f; --bg: #f6f7f8; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 18px 28px 10px; }
h1 { margin: 0 0 4px; font-size: 22px; }
.subtitle { margin: 0 0 10px; color: var(--muted); }
nav { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; }
main { max-width: 1100px; margin: 0 auto; padding: 8px 20px 30px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 18px 0; padding: 14px 22px 18px; }
h2 { margin: 4px 0 2px; font-size: 18px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.intro { color: var(--muted); margin-top: 0; }
.stats { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0; }
.figure-stat { border: 1px solid var(--line); border-radius: 5px; padding: 6px 12px; min-width: 120px; }
.figure-stat b { display: block; font-size: 19px; }
.figure-stat span { color: var(--muted); font-size: 13px; }
figure.plot { margin: 12px 0; }
figure.plot svg { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; max-width: 900px; }
table { border-collapse: collapse; margin: 10px 0; font-size: 14px; }
caption { text-align: left; color: var(--muted); padding-bottom: 4px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--bg); }
td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { background: var(--bg); padding: 0 3px; border-radius: 3px; }
.notice { border-left: 4px solid #d9a400; background: #fff8e1; padding: 6px 10px; }
.note { color: var(--muted); font-size: 13px; }
.example { border: 1px solid var(--line); border-radius: 5px; padding: 8px 12px; margin: 12px 0; }
.example h3 { margin-top: 2px; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
.text .label { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
pre { white-space: pre-wrap; word-break: break-word; background: var(--bg); border-radius: 4px; padding: 8px;
      margin: 2px 0 6px; font: 13px/1.45 ui-monospace, "DejaVu Sans Mono", monospace; }
footer { text-align: center; color: var(--muted); font-size: 12px; padding: 10px 0 24px; }
@media (max-width: 700px) { .pair { grid-template-columns: 1fr; } }
"""
