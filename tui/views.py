"""Model objects -> Rich text for the supervisor and desk screens (no Textual, no I/O)."""
from __future__ import annotations

import time
from typing import Any

from rich.cells import set_cell_size
from rich.text import Text

from .i18n import describe, t
from .model import Alert, Call, Line, Row, Stats, SEVERITY_RANK

SEV_STYLE = {"info": "cyan", "warning": "bold yellow", "critical": "bold white on red"}
SEV_FG = {"info": "cyan", "warning": "yellow", "critical": "red"}
STATUS_STYLE = {"idle": "dim", "in_call": "green", "down": "bold red", "unknown": "dim"}
SPEAKER_STYLE = {"agent": "bold cyan", "customer": "bold magenta"}
KIND_MARK = {"long_silence": "S", "talk_over": "T", "fast_speech": "F", "agitation": "A",
             "sensitive_word": "W", "missing_phrase": "M", "line_down": "X"}
SPARK = "▁▂▃▄▅▆▇█"


def fmt_dur(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(max(0.0, seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def clock(epoch: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch)) if epoch else "--:--:--"


def line_label(key: tuple[str, str, str], multi_floor: bool) -> str:
    return f"{key[1]}/{key[2]}" if multi_floor else key[2]


def mood_bar(level: float, width: int = 5) -> Text:
    filled = int(round(max(0.0, min(1.0, level)) * width))
    style = "green" if level < 0.35 else "yellow" if level < 0.7 else "bold red"
    return Text("▮" * filled, style=style) + Text("·" * (width - filled), style="dim")


def status_text(status: str, lang: str) -> Text:
    return Text(t(status, lang), style=STATUS_STYLE.get(status, ""))


def speaking_text(who: str, lang: str) -> Text:
    if not who:
        return Text("")
    style = {"both": "bold yellow", "silence": "dim italic"}.get(who, SPEAKER_STYLE.get(who, ""))
    return Text(t(who, lang), style=style)


def alerts_cell(row: Row, lang: str) -> Text:
    out = Text()
    if row.open_alerts:
        out.append(f"{row.open_alerts:>2}", style=SEV_STYLE[row.worst or "info"])
    else:
        out.append(" ·", style="dim")
    if row.flag == "takeover":
        out.append(" ⚑T", style="bold red")
    elif row.flag == "coaching":
        out.append(" ⚑C", style="yellow")
    return out


def board_cells(row: Row, lang: str, multi_floor: bool) -> list[Text | str]:
    last = Text(t(row.last_alert, lang), style=SEV_FG.get(row.worst or "", "")) if row.last_alert else Text("")
    return [line_label(row.key, multi_floor), row.agent, status_text(row.status, lang), fmt_dur(row.duration),
            speaking_text(row.speaking, lang), mood_bar(row.mood) if row.status == "in_call" else Text(""),
            alerts_cell(row, lang), last]


def feed_cells(a: Alert, lang: str, multi_floor: bool) -> list[Text | str]:
    sev = Text(t(a.severity, lang), style=SEV_STYLE.get(a.severity, ""))
    acked = a.acked_by is not None
    msg = Text(describe(a.kind, a.message, a.speaker, a.evidence, lang), style="dim" if acked else "")
    ack = Text("✓ " + a.acked_by.split("@")[0], style="green") if acked else Text("")
    return [clock(a.ts or a.received), line_label(a.key, multi_floor), sev, Text(t(a.kind, lang), style="bold"),
            msg, ack]


def header(lang: str, title: str, scope: str, conn: str, detail: str, changed_at: float,
           now: float, user: str) -> Text:
    """Top bar; `conn` is connected | connecting | disconnected."""
    out = Text(f" {title} ", style="bold")
    out.append(f" {scope} ", style="bold black on cyan")
    out.append(" ")
    if conn == "connected":
        out.append("● " + t("connected", lang), style="green")
    elif conn == "connecting":
        out.append("○ " + t("connecting", lang) + "…", style="yellow")
    else:
        out.append(f" ✖ {t('disconnected', lang)} {fmt_dur(now - changed_at)} ", style="bold white on red")
        out.append(f" {detail}", style="red")
    out.append(f"  {clock(now)}  {user}", style="dim")
    return out


def stats_text(s: Stats, lang: str, rejected: int = 0) -> Text:
    out = Text(" ")
    out.append(t("stats_calls", lang, n=s.in_call, total=s.lines), style="bold green")
    if s.down:
        out.append("  " + t("stats_down", lang, n=s.down), style="bold red")
    out.append("  " + t("stats_open", lang, n=s.open_alerts), style="bold yellow" if s.open_alerts else "")
    out.append("  " + t("stats_aht", lang, aht=fmt_dur(s.aht_s) if s.aht_s is not None else "-", n=s.aht_n))
    out.append(f"  {t('stats_hour', lang)}: ", style="dim")
    if s.alerts_last_hour:
        parts = sorted(s.alerts_last_hour.items(), key=lambda kv: -kv[1])
        out.append(" ".join(f"{t(k, lang)} {n}" for k, n in parts))
    else:
        out.append(t("stats_none", lang), style="dim")
    if s.boxes_offline:
        out.append("  " + t("stats_boxes_off", lang, n=s.boxes_offline), style="bold red")
    if rejected:
        out.append("  " + t("stats_rejected", lang, n=rejected), style="red")
    return out


def call_info(line: Line, row: Row, call: Call | None, lang: str, now: float) -> Text:
    out = Text(" ")
    out.append(t("call_of", lang, line=line.key[2]), style="bold")
    out.append(f" · {line.agent} · ")
    out.append_text(status_text(row.status, lang))
    if call is not None:
        out.append(f" {fmt_dur(call.call_time(now))}")
        if call.ended is not None:
            out.append(f" ({t('call_ended', lang)})", style="dim")
        out.append(f" · {call.call_id}", style="dim")
    out.append("\n ")
    out.append(t("col_speaking", lang) + ": ", style="dim")
    out.append_text(speaking_text(row.speaking, lang) or Text("-"))
    out.append("  " + t("col_mood", lang) + ": ", style="dim")
    out.append_text(mood_bar(row.mood))
    out.append("  " + t("col_alerts", lang) + ": ", style="dim")
    out.append_text(alerts_cell(row, lang))
    if call is not None:
        for f in call.flags[-2:]:
            out.append("  " + t("flagged", lang, reason=t(f["reason"], lang), by=f["by"].split("@")[0]),
                       style="bold red" if f["reason"] == "takeover" else "yellow")
    return out


def spark(values: list[float]) -> Text:
    out = Text()
    for v in values:
        v = max(0.0, min(1.0, v))
        style = "dim" if v == 0 else "green" if v < 0.35 else "yellow" if v < 0.7 else "bold red"
        out.append(SPARK[min(len(SPARK) - 1, int(v * (len(SPARK) - 1) + 0.5))], style=style)
    return out


def timeline(call: Call | None, width: int, lang: str, now: float) -> Text:
    """Speech of each side, alert marks and agitation, on one time axis (光阴轴)."""
    label_w = 10
    w = max(10, width - label_w - 3)
    if call is None:
        return Text(" " + t("no_call", lang), style="dim italic")
    span = max(call.call_time(now), 10.0)
    cell = span / w

    def row_of(label: str, body: Text) -> Text:
        r = Text(" " + set_cell_size(label, label_w - 1), style="dim")
        r.append("│")
        r.append_text(body)
        r.append("│")
        return r

    rows = []
    for who in ("agent", "customer"):
        cells = [" "] * w
        for u in call.transcript():
            i0, i1 = int(u.t_start / cell), int(max(u.t_start, u.t_end) / cell)
            for i in range(max(0, i0), min(w - 1, i1) + 1):
                if u.speaker == who:
                    cells[i] = "▆"
        rows.append(row_of(t(who, lang), Text("".join(cells), style=SPEAKER_STYLE[who])))
    marks = Text(" " * w)
    best: dict[int, int] = {}
    for a in call.alerts:
        i = min(w - 1, max(0, int(a.t_start / cell)))
        rank = SEVERITY_RANK.get(a.severity, 1) * 2 + (0 if a.acked_by else 1)
        if rank >= best.get(i, -1):
            best[i] = rank
            style = "dim" if a.acked_by else SEV_FG.get(a.severity, "")
            marks = marks[:i] + Text(KIND_MARK.get(a.kind, "!"), style=f"bold {style}") + marks[i + 1:]
    rows.append(row_of(t("alerts_row", lang), marks))
    rows.append(row_of(t("agitation_row", lang), spark(call.agitation("customer", w, span))))
    axis = Text(" " * (label_w + 1) + "0:00", style="dim")
    end = fmt_dur(span)
    axis.append(" " * max(1, w - 4 - len(end) + 1) + end, style="dim")
    return Text("\n").join(rows + [axis])


def flow_text(flow: dict[str, Any] | None, lang: str) -> Text | None:
    if not flow:
        return None
    out = Text(f" {t('flow', lang)}: ", style="bold")
    out.append(str(flow.get("flow") or ""))
    comp = flow.get("completion")
    if isinstance(comp, (int, float)):
        pct = comp * 100 if comp <= 1 else comp
        out.append(f" {pct:.0f}%", style="bold green")
    out.append("  ")
    for st in flow.get("steps") or []:
        if not isinstance(st, dict):
            continue
        done = bool(st.get("done"))
        out.append(("✓" if done else "·") + str(st.get("title") or st.get("id") or "") + " ",
                   style="green" if done else "dim")
    nxt = flow.get("next_step")
    if nxt:
        title = nxt.get("title") or nxt.get("script") or nxt.get("id") if isinstance(nxt, dict) else nxt
        out.append(f"▸ {t('next', lang)}: ", style="bold")
        out.append(str(title), style="bold cyan")
    return out


def transcript_text(call: Call | None, lang: str) -> Text:
    """Utterances in call order, partials in italics, this call's alerts interleaved."""
    if call is None:
        return Text(t("no_call", lang), style="dim italic")
    items: list[tuple[float, int, Any]] = [(u.t_start, 0, u) for u in call.transcript()]
    items += [(a.t_start, 1, a) for a in call.alerts]
    items.sort(key=lambda x: (x[0], x[1]))
    if not any(k == 0 for _, k, _ in items):
        head = Text(t("no_transcript", lang) + "\n", style="dim italic")
    else:
        head = Text()
    lines = [head] if head else []
    for ts, kind, obj in items:
        r = Text(f"{fmt_dur(ts):>5} ", style="dim")
        if kind == 0:
            r.append(f"{t(obj.speaker, lang)}: ", style=SPEAKER_STYLE.get(obj.speaker, ""))
            r.append(obj.text + ("" if obj.final else " …"), style="" if obj.final else "italic dim")
        else:
            r.append(f"⚠ {t(obj.kind, lang)} ", style=SEV_FG.get(obj.severity, ""))
            r.append(describe(obj.kind, obj.message, obj.speaker, obj.evidence, lang),
                     style="dim" if obj.acked_by else SEV_FG.get(obj.severity, ""))
            if obj.acked_by:
                r.append("  ✓ " + obj.acked_by.split("@")[0], style="green")
        lines.append(r)
    return Text("\n").join(lines)


def suggestion_text(s: dict[str, Any], lang: str, seen: bool = False) -> Text:
    kind = str(s.get("kind") or "")
    out = Text(f"[{kind}] " if kind else "", style="dim")
    out.append(str(s.get("title") or ""), style="dim bold" if seen else "bold")
    score = s.get("score")
    if isinstance(score, (int, float)):
        out.append(f"  {t('score', lang)} {score:.2f}", style="dim")
    body = s.get("body")
    if body:
        out.append("\n  " + str(body).strip().replace("\n", "\n  "))
    article = s.get("article")
    if isinstance(article, dict):
        article = article.get("text") or article.get("body")
    if article and article != body:
        out.append("\n  " + str(article).strip().replace("\n", "\n  "), style="dim")
    return out


def side_text(call: Call | None, lang: str) -> Text:
    if call is None:
        return Text("")
    out = [Text(t("call_alerts", lang), style="bold underline")]
    for a in reversed(call.alerts):
        r = Text(f"{fmt_dur(a.t_start):>5} ", style="dim")
        r.append(t(a.kind, lang), style=SEV_FG.get(a.severity, "") if a.acked_by is None else "dim")
        r.append("  ✓" if a.acked_by else "  ●", style="green" if a.acked_by else SEV_FG.get(a.severity, ""))
        out.append(r)
    if not call.alerts:
        out.append(Text(t("no_alerts", lang), style="dim"))
    if call.suggestions:
        out.append(Text("\n" + t("suggestions", lang), style="bold underline"))
        for s in reversed(call.suggestions):
            out.append(suggestion_text(s, lang))
    if call.summary:
        out.append(Text("\n" + t("summary", lang), style="bold underline"))
        out.append(Text(str(call.summary.get("summary") or "")))
        if call.summary.get("call_type"):
            out.append(Text(f"type: {call.summary['call_type']}", style="dim"))
    return Text("\n").join(out)
