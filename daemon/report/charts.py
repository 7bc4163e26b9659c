"""Charts as inline SVG, drawn by matplotlib's SVG backend (no browser-side library, no
network). Text stays text (`svg.fonttype: none`), so Chinese labels are drawn by the
reader's own fonts; element ids are prefixed per chart so many SVGs share one page.
"""
from __future__ import annotations

import io
import logging
import re
import warnings
from typing import Sequence

_MPL = None
PALETTE = ["#2b6cb0", "#dd6b20", "#38a169", "#d53f8c", "#805ad5", "#d69e2e", "#319795", "#e53e3e", "#718096"]


def _mpl():
    global _MPL
    if _MPL is None:
        import matplotlib
        matplotlib.use("svg", force=True)
        import matplotlib.pyplot as plt
        matplotlib.rcParams.update({
            "svg.fonttype": "none", "svg.hashsalt": "callcue", "font.size": 9,
            "font.family": ["DejaVu Sans", "WenQuanYi Zen Hei"],
            "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
            "axes.prop_cycle": matplotlib.cycler(color=PALETTE), "figure.dpi": 96,
        })
        logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
        _MPL = plt
    return _MPL


class Charts:
    def __init__(self):
        self.n = 0

    def _svg(self, fig) -> str:
        plt = _mpl()
        buf = io.StringIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")           # glyphs missing from the layout font (CJK): drawn by the browser
            fig.savefig(buf, format="svg", bbox_inches="tight")
        plt.close(fig)
        self.n += 1
        pre = f"g{self.n}-"
        svg = buf.getvalue()
        svg = svg[svg.index("<svg"):]
        svg = re.sub(r'id="([^"]+)"', lambda m: f'id="{pre}{m.group(1)}"', svg)
        svg = re.sub(r'url\(#([^)]+)\)', lambda m: f"url(#{pre}{m.group(1)})", svg)
        svg = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{pre}{m.group(1)}"', svg)
        return f'<div class="chart" data-chart="{self.n}">{svg}</div>'

    def bars(self, labels: Sequence[str], values: Sequence[float], title: str, xlabel: str = "",
             percent: bool = False, horizontal: bool = True, color: str | None = None) -> str:
        plt = _mpl()
        n = len(labels)
        if horizontal:
            fig, ax = plt.subplots(figsize=(6.4, max(1.6, 0.28 * n + 0.8)))
            y = list(range(n))[::-1]
            ax.barh(y, values, color=color or PALETTE[0])
            ax.set_yticks(y, labels)
            ax.grid(axis="y", visible=False)
            if percent:
                ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
            ax.set_xlabel(xlabel)
        else:
            fig, ax = plt.subplots(figsize=(6.4, 2.6))
            ax.bar(range(n), values, color=color or PALETTE[0])
            ax.set_xticks(range(n), labels, rotation=0 if n < 10 else 45, ha="center" if n < 10 else "right")
            ax.grid(axis="x", visible=False)
            if percent:
                ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
            ax.set_xlabel(xlabel)
        ax.set_title(title, loc="left", fontsize=10)
        return self._svg(fig)

    def stacked_share(self, groups: Sequence[str], buckets: Sequence[str], counts: list[list[int]], title: str) -> str:
        """One 100 % bar per group, split by bucket (e.g. QA score bands per team)."""
        plt = _mpl()
        import matplotlib
        fig, ax = plt.subplots(figsize=(6.4, max(1.6, 0.32 * len(groups) + 1.0)))
        cmap = matplotlib.colormaps["RdYlGn"]
        y = list(range(len(groups)))[::-1]
        left = [0.0] * len(groups)
        for b, name in enumerate(buckets):
            vals = [(row[b] / sum(row)) if sum(row) else 0.0 for row in counts]
            ax.barh(y, vals, left=left, color=cmap(b / max(1, len(buckets) - 1)), label=name, edgecolor="white",
                    linewidth=0.5)
            left = [l + v for l, v in zip(left, vals)]
        ax.set_yticks(y, groups)
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
        ax.grid(visible=False)
        ax.legend(ncol=len(buckets), loc="upper left", bbox_to_anchor=(0, -0.12), frameon=False, fontsize=8)
        ax.set_title(title, loc="left", fontsize=10)
        return self._svg(fig)

    def grouped(self, groups: Sequence[str], series: dict[str, list[float]], title: str, ylabel: str = "") -> str:
        plt = _mpl()
        fig, ax = plt.subplots(figsize=(6.8, 2.8))
        k = max(1, len(series))
        w = 0.8 / k
        for i, (name, vals) in enumerate(series.items()):
            ax.bar([g + (i - (k - 1) / 2) * w for g in range(len(groups))], vals, width=w, label=name)
        ax.set_xticks(range(len(groups)), groups, rotation=0 if len(groups) < 8 else 45,
                      ha="center" if len(groups) < 8 else "right")
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(ylabel)
        ax.legend(ncol=min(4, k), fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(0, -0.15))
        ax.set_title(title, loc="left", fontsize=10)
        return self._svg(fig)

    def trend(self, days: Sequence[str], calls: Sequence[float], line: Sequence[float | None], title: str,
              calls_label: str, line_label: str) -> str:
        plt = _mpl()
        fig, ax = plt.subplots(figsize=(6.8, 2.6))
        x = list(range(len(days)))
        ax.bar(x, calls, color="#bcd3ee", label=calls_label)
        ax.set_ylabel(calls_label)
        ax2 = ax.twinx()
        ax2.plot([i for i, v in zip(x, line) if v is not None], [v for v in line if v is not None], color=PALETTE[1],
                 marker="o", markersize=3, label=line_label)
        ax2.set_ylabel(line_label)
        ax2.grid(visible=False)
        ax2.spines["right"].set_visible(True)
        step = max(1, len(days) // 12)
        ax.set_xticks(x[::step], [d[5:] for d in days][::step])
        ax.grid(axis="x", visible=False)
        ax.set_title(title, loc="left", fontsize=10)
        return self._svg(fig)
