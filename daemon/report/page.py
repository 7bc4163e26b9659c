"""HTML pieces of the report: formatting, sortable tables, the per-call timeline, the page."""
from __future__ import annotations

import hashlib
import html
from typing import Any, Callable, Sequence

from .i18n import alert_name, t

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Microsoft YaHei","PingFang SC","WenQuanYi Zen Hei",sans-serif;
 margin:0;color:#1a202c;background:#f7fafc;font-size:14px}
header{background:#1a365d;color:#fff;padding:16px 24px}header h1{margin:0 0 4px;font-size:22px}
header .meta{opacity:.85;font-size:13px}nav{background:#fff;border-bottom:1px solid #e2e8f0;padding:8px 24px;
 position:sticky;top:0;z-index:2}nav a{margin-right:14px;color:#2b6cb0;text-decoration:none;font-size:13px}
main{padding:8px 24px 40px;max-width:1200px}section{background:#fff;border:1px solid #e2e8f0;border-radius:6px;
 padding:12px 16px;margin:14px 0}h2{font-size:17px;margin:4px 0 10px}h3{font-size:14px;margin:14px 0 6px}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #e2e8f0;border-radius:6px;padding:8px 12px;
 min-width:150px;background:#fbfdff}.card .v{font-size:22px;font-weight:600;color:#1a365d}.card .k{font-size:12px;color:#4a5568}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}th,td{border-bottom:1px solid #edf2f7;padding:3px 8px;
 text-align:right;white-space:nowrap}th{background:#edf2f7;cursor:pointer;user-select:none;position:sticky;top:0}
td.t,th.t{text-align:left}th.sorted-asc:after{content:" \\25B2"}th.sorted-desc:after{content:" \\25BC"}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:12px}.chart svg{max-width:100%;height:auto}
.scroll{max-height:460px;overflow:auto}.note{color:#718096;font-size:12px}.bad{color:#c53030}.good{color:#2f855a}
.call{border-top:2px solid #e2e8f0;margin-top:14px;padding-top:6px}.call pre{white-space:pre-wrap;background:#f7fafc;
 padding:6px 8px;border-radius:4px;font-family:inherit}a{color:#2b6cb0}[id]{scroll-margin-top:56px}
"""

SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(tb){
  tb.querySelectorAll('th').forEach(function(th,ci){
    th.addEventListener('click',function(){
      var body=tb.tBodies[0],rows=Array.prototype.slice.call(body.rows),desc=!th.classList.contains('sorted-desc');
      tb.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc');});
      th.classList.add(desc?'sorted-desc':'sorted-asc');
      rows.sort(function(a,b){
        var x=a.cells[ci].getAttribute('data-v'),y=b.cells[ci].getAttribute('data-v');
        var nx=parseFloat(x),ny=parseFloat(y),r;
        if(x===''&&y!==''){return 1;} if(y===''&&x!==''){return -1;}
        if(!isNaN(nx)&&!isNaN(ny)){r=nx-ny;}else{r=String(x).localeCompare(String(y));}
        return desc?-r:r;});
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
"""


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def fmt(v: Any, kind: str = "") -> str:
    if v is None:
        return "–"
    if kind == "int":
        return f"{int(round(v)):,}"
    if kind == "pct":
        return f"{100 * v:.1f}%"
    if kind == "f1":
        return f"{v:.1f}"
    if kind == "f2":
        return f"{v:.2f}"
    if kind == "min":
        s = int(round(v))
        return f"{s // 60}:{s % 60:02d}"
    if kind == "h":
        return f"{v / 3600:,.1f}"
    return str(v)


def raw(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def anchor(prefix: str, *parts: Any) -> str:
    return prefix + "-" + hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:12]


Col = tuple[str, str]   # (heading, kind: "t" text, "int", "pct", "f1", "f2", "min")


def table(cols: Sequence[Col], rows: Sequence[Sequence[Any]], *, links: dict[int, Callable[[Sequence[Any]], str]] | None = None,
          tid: str = "", scroll: bool = True) -> str:
    links = links or {}
    head = "".join(f'<th class="{"t" if k == "t" else ""}">{esc(h)}</th>' for h, k in cols)
    body = []
    for r in rows:
        cells = []
        for i, ((_, k), v) in enumerate(zip(cols, r)):
            # figures need no escaping (digits, signs, '.', ',', ':', '%', '–'): only text is escaped
            if k == "t":
                shown = "–" if v is None else esc(v)
                key = esc(raw(v))
            else:
                shown = fmt(v, k)
                key = raw(v) if v is None or isinstance(v, (int, float)) else esc(raw(v))
            if i in links:
                shown = f'<a href="#{links[i](r)}">{shown}</a>'
            cells.append(f'<td class="{"t" if k == "t" else ""}" data-v="{key}">{shown}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    t_ = f'<table class="sortable"{f" id={chr(34)}{tid}{chr(34)}" if tid else ""}><thead><tr>{head}</tr></thead>' \
         f'<tbody>{"".join(body)}</tbody></table>'
    return f'<div class="scroll">{t_}</div>' if scroll else t_


KIND_COLOURS = {"long_silence": "#718096", "talk_over": "#dd6b20", "fast_speech": "#d69e2e", "agitation": "#e53e3e",
                "sensitive_word": "#805ad5", "missing_phrase": "#3182ce", "line_down": "#1a202c"}


def timeline(duration: float | None, alerts: list[tuple], lang: str) -> str:
    """The call as two lanes (agent, customer) with its alerts where they happened."""
    end = max([duration or 0.0] + [a[4] or 0.0 for a in alerts] + [1.0])
    W, X0, lane = 640, 70, {"agent": 8, "customer": 30}
    sx = (W - X0 - 10) / end
    parts = [f'<svg class="timeline" width="{W}" height="62" viewBox="0 0 {W} 62" role="img">',
             f'<text x="4" y="20" font-size="11">{esc(t("agent_speech", lang))}</text>',
             f'<text x="4" y="42" font-size="11">{esc(t("customer_speech", lang))}</text>',
             f'<rect x="{X0}" y="8" width="{W - X0 - 10}" height="16" fill="#edf2f7"/>',
             f'<rect x="{X0}" y="30" width="{W - X0 - 10}" height="16" fill="#edf2f7"/>']
    step = 60 if end > 180 else 30 if end > 60 else 10
    s = 0
    while s <= end:
        x = X0 + s * sx
        parts.append(f'<line x1="{x:.1f}" y1="48" x2="{x:.1f}" y2="52" stroke="#a0aec0"/>'
                     f'<text x="{x:.1f}" y="61" font-size="9" text-anchor="middle">{s // 60}:{s % 60:02d}</text>')
        s += step
    for kind, speaker, severity, t0, t1 in alerts:
        if t0 is None:
            continue
        t1 = t1 if t1 is not None and t1 > t0 else t0 + 0.5
        x, w = X0 + t0 * sx, max(2.0, (t1 - t0) * sx)
        ys = [lane[speaker]] if speaker in lane else [8, 30]
        for y in ys:
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="16" fill="{KIND_COLOURS.get(kind, "#4a5568")}" '
                         f'opacity="0.85"><title>{esc(alert_name(kind, lang))} {t0:.1f}-{t1:.1f} s</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def page(lang: str, title: str, meta: str, nav: list[tuple[str, str]], sections: list[str]) -> str:
    links = "".join(f'<a href="#{a}">{esc(n)}</a>' for a, n in nav)
    return (f'<!DOCTYPE html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{esc(title)}</title><style>{CSS}</style></head><body>'
            f'<header id="top"><h1>{esc(title)}</h1><div class="meta">{meta}</div></header>'
            f'<nav>{links}</nav><main>{"".join(sections)}</main><script>{SORT_JS}</script></body></html>')
