"""Charts as inline SVG, drawn by matplotlib.

Why matplotlib (Agg, SVG output): it is already in the environment, draws offline with no JavaScript, and its SVG puts
every bar, whisker and point in the page's DOM (each mark a named <g>), so the page stays one file, is crisp at any
zoom, and a test can count the marks a person sees. Vega-Lite/Altair would need their JavaScript runtime inlined
(hundreds of KB) and draw only after scripts run.
"""

from __future__ import annotations

import io
import math
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, searchable
    "svg.hashsalt": "chexbench-report",  # deterministic clip-path ids (made unique per chart below)
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
BAR = "#3b6ea8"
SYNTH, REAL = "#d1495b", "#3b6ea8"
REAL_MARK = "#e07b00"  # the real set's value beside a bar (it must stand out from BAR)
_ID = re.compile(r'\bid="([^"]+)"')


def _svg(fig, chart_id: str) -> str:
    """The figure as an <svg> element whose ids all start with `chart_id-` (several charts share one page)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    for name in set(_ID.findall(text)):
        new = f"{chart_id}-{name}"
        text = text.replace(f'id="{name}"', f'id="{new}"').replace(f"#{name})", f"#{new})")
        text = text.replace(f'href="#{name}"', f'href="#{new}"')
    return text.replace("<svg ", f'<svg class="chart" role="img" aria-label="{chart_id}" ', 1)


def _finite(x) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(x)


def bar_chart(chart_id: str, points: list[dict], xlabel: str, reference: str | None = None) -> str:
    """Horizontal bars, one per point with a value ({label, value, ci_low, ci_high}), CI whiskers where known; with
    `reference` (its legend text), each point's `reference` value as an open diamond on the bar's row.

    Marks: `<chart_id>-bar-<i>` per bar, `<chart_id>-ci-<i>` per whisker and `<chart_id>-ref-<i>` per reference
    marker; a label without a value gets no bar and the text `n/a`.
    """
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.2, 0.28 * max(len(points), 3) + 0.8))
        ys = list(range(len(points)))[::-1]
        for i, (y, p) in enumerate(zip(ys, points, strict=True)):
            if reference and _finite(p.get("reference")):
                (mark,) = ax.plot([p["reference"]], [y], "D", mfc="none", mec=REAL_MARK, ms=6, mew=1.3, zorder=3)
                mark.set_gid(f"ref-{i}")
                mark.set_label(reference if not ax.get_legend_handles_labels()[0] else None)
            if not _finite(p.get("value")):
                ax.text(0, y, " n/a", va="center", fontsize=8, color="#777")
                continue
            (bar,) = ax.barh([y], [p["value"]], color=BAR, height=0.65)
            bar.set_gid(f"bar-{i}")
            if _finite(p.get("ci_low")) and _finite(p.get("ci_high")):
                (line,) = ax.plot([p["ci_low"], p["ci_high"]], [y, y], color="#222", lw=1.2, marker="|", ms=7)
                line.set_gid(f"ci-{i}")
        ax.set_yticks(ys, [p["label"] for p in points])
        ax.set_xlabel(xlabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left", bbox_to_anchor=(0, 1), frameon=False, fontsize=8, borderaxespad=0.2)
        ax.axvline(0, color="#999", lw=0.6)
        ax.margins(y=0.02)
        return _svg(fig, chart_id)


def scatter_chart(chart_id: str, real, synth, axis_labels: tuple[str, str]) -> str:
    """Real and synthetic points (N x 2 arrays) on shared axes. Marks: one <use> per point inside the groups
    `<chart_id>-real` and `<chart_id>-synthetic`."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 4.2))
        for name, xy, colour, marker in (("real", real, REAL, "o"), ("synthetic", synth, SYNTH, "^")):
            points = ax.scatter(xy[:, 0], xy[:, 1], s=14, c=colour, marker=marker, alpha=0.7, label=name, lw=0)
            points.set_gid(name)
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
        ax.legend(loc="best", frameon=False)
        return _svg(fig, chart_id)


def level_chart(chart_id: str, points: list[dict], ylabel: str, colour: str = BAR) -> str:
    """A small chart of one relation's series: value against ladder level or control ({label, value, ci_low,
    ci_high}, in order), CI whiskers where known.

    Marks: `<chart_id>-pt-<i>` per point with a value and `<chart_id>-ci-<i>` per whisker; a point without a value
    gets the text `n/a`.
    """
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(3.3, 2.3))
        xs = list(range(len(points)))
        shown = [(x, p) for x, p in zip(xs, points, strict=True) if _finite(p.get("value"))]
        if len(shown) > 1:
            ax.plot([x for x, _ in shown], [p["value"] for _, p in shown], color=colour, lw=1, alpha=0.5)
        for i, (x, p) in enumerate(zip(xs, points, strict=True)):
            if not _finite(p.get("value")):
                ax.text(x, 0, "n/a", ha="center", fontsize=7, color="#777")
                continue
            if _finite(p.get("ci_low")) and _finite(p.get("ci_high")):
                (line,) = ax.plot([x, x], [p["ci_low"], p["ci_high"]], color="#222", lw=1.1, marker="_", ms=7)
                line.set_gid(f"ci-{i}")
            (dot,) = ax.plot([x], [p["value"]], "o", color=colour, ms=4.5)
            dot.set_gid(f"pt-{i}")
        ax.set_xticks(xs, [p["label"] for p in points], rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(ylabel)
        ax.margins(x=0.08)
        return _svg(fig, chart_id)
