"""The digest chart: the primary behavior's weekly rate, cohort vs comparison, as a PNG.

Drawn with matplotlib's object API on the Agg canvas (no display, no pyplot global state,
so it is safe in a worker thread), from the already-suppressed Digest: a week hidden
there is a gap here. Rendering takes tens of milliseconds of CPU, so async callers use
``chart_png``, which runs it in a thread.
"""

from __future__ import annotations

import asyncio
import io
import math
import textwrap
from collections.abc import Sequence

from nudges.digest import Digest, Estimate
from nudges.weeks import IsoWeek

COHORT_COLOR = "#1f5fa8"
COMPARISON_COLOR = "#c0602a"


def _column(estimates: Sequence[Estimate | None], attr: str) -> list[float]:
    # NaN leaves a gap in both the line and the band: suppressed weeks are not drawn.
    values = [getattr(e, attr) if e is not None else None for e in estimates]
    return [math.nan if v is None else float(v) for v in values]


def render_chart(digest: Digest) -> bytes | None:
    """PNG bytes of the chart, or None when the cohort has no primary behavior to chart."""
    primary = digest.primary
    if primary is None or not digest.series:
        return None
    # Imported here: matplotlib takes longer to import than most commands take to run, and
    # only a digest with a chart needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    rate = primary.kind == "yes_partly_no"
    x = [p.week_number for p in digest.series]
    figure = Figure(figsize=(8, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    lines: list[tuple[str, list[Estimate | None], str]] = [(digest.cohort_name, [p.cohort for p in digest.series], COHORT_COLOR)]
    if digest.comparison_name and any(p.comparison is not None for p in digest.series):
        lines.append((digest.comparison_name, [p.comparison for p in digest.series], COMPARISON_COLOR))
    for name, estimates, color in lines:
        ax.fill_between(x, _column(estimates, "low"), _column(estimates, "high"), color=color, alpha=0.18, linewidth=0)
        ax.plot(x, _column(estimates, "value"), color=color, marker="o", markersize=4, linewidth=2, label=name)
    analysis_week = IsoWeek.of(primary.first_analysis) - digest.series[0].week + 1
    if 1 <= analysis_week <= x[-1]:
        ax.axvline(analysis_week, color="#888888", linestyle="--", linewidth=1, label="first analysis (pre-registered)")
    if rate:
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylabel("share of answers (partly = half)")
    else:
        ax.set_ylim(bottom=1 if primary.kind == "scale_1_5" else 0, top=5 if primary.kind == "scale_1_5" else None)
        ax.set_ylabel("mean answer")
    ax.set_xlim(0.5, max(x) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("week of the cohort")
    ax.grid(axis="y", color="#dddddd", linewidth=0.8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="upper left", frameon=False, fontsize=9)
    ax.set_title("\n".join(textwrap.wrap(primary.question, 80)), fontsize=11, loc="left")
    figure.text(
        0.01,
        0.01,
        f"Shaded: 95% intervals. Weeks with fewer than {digest.min_group_size} responses are not shown.",
        fontsize=8,
        color="#555555",
    )
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    buffer = io.BytesIO()
    # No "Software" tag: the file carries the picture and nothing about the machine that drew it.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


async def chart_png(digest: Digest) -> bytes | None:
    """``render_chart`` in a worker thread, so the event loop keeps serving clicks meanwhile."""
    return await asyncio.to_thread(render_chart, digest)
