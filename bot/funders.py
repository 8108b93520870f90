"""``ausweg report``: the funder report as CSV and one self-contained HTML page.

The numbers come from :mod:`storage.stats` (small counts already hidden); this module
only writes them out. Charts are matplotlib SVGs embedded in the page (no scripts, no
downloads: the page opens offline and prints). A hidden count is drawn as no bar and
labelled "<5".
"""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

from storage.stats import HIDDEN, FunderReport

TITLES = {
    "month": "Neue Anfragen pro Monat / New requests per month",
    "audience": "Wer schreibt / Who writes",
    "scene": "Szene / Scene",
    "region": "Bundesland / Federal state",
    "source": "Wie gefunden / Outreach source",
    "outcome": "Ergebnis abgeschlossener Fälle / Outcome of closed cases",
    "first_reply": "Tage bis zur ersten Antwort / Days to the first counsellor reply",
}


def write_csv(report: FunderReport, path: Path) -> None:
    """One row per (dimension, value, count); hidden counts as "<5"."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["dimension", "value", "count"])
        for name, b in report.breakdowns.items():
            for value, count in b.cells.items():
                out.writerow([name, value, count])
            out.writerow([name, "total", b.total])


def _chart(name: str, cells: dict[str, int | str]) -> str:
    """A horizontal bar chart as inline SVG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels = list(cells)
    values = [c if isinstance(c, int) else 0 for c in cells.values()]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.2))
    try:
        bars = ax.barh(labels, values, color="#2f6f8f")
        ax.invert_yaxis()
        ax.set_title(TITLES.get(name, name), fontsize=11, loc="left")
        ax.bar_label(bars, labels=[str(c) for c in cells.values()], padding=3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_xlim(0, max([*values, 1]) * 1.15)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    finally:
        plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog: the SVG sits inside HTML


def render_html(report: FunderReport) -> str:
    """The whole report as one HTML page with embedded SVG charts and tables."""
    scope = report.programme or "alle Programme / all programmes"
    parts = [
        "<!doctype html><html lang='de'><head><meta charset='utf-8'>",
        "<title>Ausweg – Bericht / report</title>",
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;margin:.5rem 0 2rem}td,th{border:1px solid #ccc;"
        "padding:.2rem .6rem;text-align:left}figure{margin:1rem 0}</style></head><body>",
        f"<h1>Ausweg: {report.start:%Y-%m-%d} – {report.end:%Y-%m-%d}</h1>",
        f"<p>{html.escape(scope)}. Zahlen unter 5 werden als „{HIDDEN}“ gezeigt; "
        "so lässt sich keine einzelne Person herausrechnen. / Counts below 5 are shown "
        f"as “{HIDDEN}” so that no single person can be worked out.</p>",
    ]
    for name, b in report.breakdowns.items():
        parts.append(f"<section id='{name}'><h2>{html.escape(TITLES.get(name, name))}</h2>")
        parts.append(
            f"<figure class='chart' data-dimension='{name}'>{_chart(name, b.cells)}</figure>"
        )
        rows = "".join(
            f"<tr><td>{html.escape(v)}</td><td>{html.escape(str(c))}</td></tr>"
            for v, c in b.cells.items()
        )
        parts.append(
            f"<table><tr><th>Wert / value</th><th>Anzahl / count</th></tr>{rows}"
            f"<tr><th>gesamt / total</th><th>{html.escape(str(b.total))}</th></tr></table>"
            "</section>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: FunderReport, folder: Path) -> tuple[Path, Path]:
    """Write ``report.csv`` and ``report.html`` into ``folder``; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = folder / "report.csv", folder / "report.html"
    write_csv(report, csv_path)
    html_path.write_text(render_html(report), encoding="utf-8")
    return csv_path, html_path
