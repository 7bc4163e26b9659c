"""A stored call as one timeline: IVR context, turns, alerts, suggestions, flow steps,
ticket (with the agent's corrections), scorecard. `callcue calls show` prints it and
the supervisor TUI draws the same one, asked from the box over MQTT (records.py).

    tl = timeline(store.get_call(call_id))        # plain data (JSON), from the record + events
    for part in render(tl): console.print(part)   # rich text and tables

Personal data: the turns are the stored transcripts, redacted before they were ever
published; IVR values go through the site's redactor here; the values of personal ticket
fields (and of their corrections) are masked, whatever the site's ticket setting.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Callable

SPEAKERS = ("agent", "customer")
LABELS = {
    "en": {"call": "Call", "line": "line", "agent": "agent", "started": "started", "duration": "duration",
           "status": "status", "ivr": "IVR context", "summary": "Summary", "timeline": "Timeline",
           "steps": "Flow steps", "ticket": "Ticket", "scorecard": "Scorecard", "figures": "Figures",
           "corrected": "corrected by", "none": "(none)", "missing": "missing required", "score": "score",
           "passed": "passed", "failed": "below the pass mark", "flags": "Flags", "type": "call type",
           "done": "done", "not_done": "not done", "n_a": "n/a", "was": "was", "extracted": "extracted"},
    "zh": {"call": "通话", "line": "线路", "agent": "坐席", "started": "开始", "duration": "时长",
           "status": "状态", "ivr": "IVR 信息", "summary": "小结", "timeline": "时间线",
           "steps": "流程步骤", "ticket": "工单", "scorecard": "质检评分", "figures": "指标",
           "corrected": "修改人", "none": "(无)", "missing": "必填缺失", "score": "得分",
           "passed": "合格", "failed": "不合格", "flags": "标记", "type": "来电类型",
           "done": "已完成", "not_done": "未完成", "n_a": "不适用", "was": "原为", "extracted": "抽取"},
}
KIND_ORDER = {"step": 0, "turn": 1, "suggestion": 2, "alert": 3, "flag": 4}


def _mask(value: Any, ch: str) -> Any:
    """A personal value with every digit masked (as the ticket's own masking does)."""
    return None if value is None else re.sub(r"[0-9０-９]", ch, str(value))


def _secs(iso: Any, started: str | None) -> float | None:
    try:
        return round((datetime.fromisoformat(iso) - datetime.fromisoformat(started)).total_seconds(), 2)
    except (TypeError, ValueError):
        return None


def _redact_value(v: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(v, str):
        return redact(v)
    if isinstance(v, dict):
        return {k: _redact_value(x, redact) for k, x in v.items()}
    if isinstance(v, list):
        return [_redact_value(x, redact) for x in v]
    return v


def effective_ticket(ticket: dict[str, Any] | None, corrections: list[dict[str, Any]],
                     mask_char: str | None = "*") -> dict[str, Any] | None:
    """The ticket as filed: each field's extracted value, and the last correction of it
    (value, due, by, ts) when the agent corrected it. `mask_char` masks personal values
    (None: as stored)."""
    if not isinstance(ticket, dict):
        return None
    form = ticket.get("form") or {}
    fields = []
    last = {}
    for c in corrections or []:
        last[c.get("field")] = c
    for name, f in (ticket.get("fields") or {}).items():
        info = form.get(name) or {}
        personal = bool(info.get("personal"))
        out = {"name": name, "title": info.get("title") or name, "type": info.get("type"), "personal": personal,
               "value": f.get("value"), "due": f.get("due"), "evidence": f.get("evidence"), "t": f.get("t"),
               "confidence": f.get("confidence"), "speaker": f.get("speaker"), "extracted": f.get("value"),
               "corrected": None}
        c = last.get(name)
        if c is not None:
            out["value"] = c.get("value")
            if c.get("due") is not None or "due" in c:
                out["due"] = c.get("due")
            out["corrected"] = {"by": c.get("by"), "ts": c.get("ts")}
        if personal and mask_char is not None:
            out["value"] = _mask(out["value"], mask_char)
            out["extracted"] = _mask(out["extracted"], mask_char)
        fields.append(out)
    filled = {f["name"] for f in fields if f["value"] is not None}
    required = [n for n, i in form.items() if i.get("required")] if form else list(ticket.get("missing_required") or [])
    return {"template": ticket.get("template"), "title": ticket.get("title") or ticket.get("template"),
            "fields": fields, "missing_required": [n for n in required if n not in filled],
            "corrections": len(corrections or [])}


def timeline(rec: dict[str, Any], redact: Callable[[str], str] | None = None, mask_char: str = "*") -> dict[str, Any]:
    """The timeline of one stored call (`rec`: a call record with its "events")."""
    redact = redact or (lambda s: s)
    started = rec.get("started")
    events = rec.get("events") or []
    summary = next((e["payload"] for e in reversed(events) if e.get("kind") == "summary"), None) or {}
    acks: dict[str, str] = {}
    for e in events:
        if e.get("kind") == "ack":
            acks.setdefault(str(e["payload"].get("alert_id")), str(e["payload"].get("by")))
    items: list[dict[str, Any]] = []
    # the call record's turns (a second recognition pass) replace the live finals they cover
    record = [e["payload"] for e in events if e.get("kind") == "record" and isinstance(e.get("payload"), dict)]

    def covered(p: dict) -> bool:
        return any(r.get("speaker") == p.get("speaker") and (p.get("t_start") or 0) < (r.get("t_end") or 0)
                   and (r.get("t_start") or 0) < (p.get("t_end") or 0) for r in record)

    for r in record:
        items.append({"t": r.get("t_start"), "t_end": r.get("t_end"), "kind": "turn", "speaker": r.get("speaker"),
                      "text": r.get("text") or "", "record": True})
    for e in events:
        p = e.get("payload") or {}
        kind = e.get("kind")
        if kind == "transcript" and p.get("final", True):
            if not covered(p):
                items.append({"t": p.get("t_start"), "t_end": p.get("t_end"), "kind": "turn",
                              "speaker": p.get("speaker"), "text": p.get("text") or ""})
        elif kind == "alert":
            items.append({"t": p.get("t_start"), "t_end": p.get("t_end"), "kind": "alert", "alert": p.get("kind"),
                          "severity": p.get("severity"), "speaker": p.get("speaker"),
                          "message": p.get("message") or "", "acked_by": acks.get(str(p.get("id")))})
        elif kind == "suggestion":
            items.append({"t": p.get("t"), "kind": "suggestion", "type": p.get("kind"),
                          "title": p.get("title") or "", "body": p.get("body") or ""})
        elif kind == "flag":
            items.append({"t": _secs(p.get("ts"), started), "kind": "flag", "reason": p.get("reason"),
                          "by": p.get("by"), "note": p.get("note") or ""})
    card = rec.get("scorecard") or summary.get("scorecard") or {}
    steps = card.get("steps") or []
    for s in steps:
        if s.get("done") and s.get("t") is not None:
            items.append({"t": s["t"], "kind": "step", "id": s.get("id"), "title": s.get("title")})
    items.sort(key=lambda i: (i["t"] if isinstance(i.get("t"), (int, float)) else float("inf"),
                              KIND_ORDER.get(i["kind"], 9)))
    ticket = rec.get("ticket") if rec.get("ticket") is not None else summary.get("ticket")
    corrections = []
    form = (ticket or {}).get("form") or {}
    for c in rec.get("corrections") or []:
        personal = bool((form.get(c.get("field")) or {}).get("personal"))
        orig = dict(c.get("original") or {})
        corrections.append({"field": c.get("field"), "by": c.get("by"), "ts": c.get("ts"), "due": c.get("due"),
                            "value": _mask(c.get("value"), mask_char) if personal else c.get("value"),
                            "was": _mask(orig.get("value"), mask_char) if personal else orig.get("value")})
    ivr = rec.get("ivr") or summary.get("ivr")
    return {
        "call_id": rec.get("call_id"), "line": rec.get("line"), "agent": rec.get("agent"), "started": started,
        "ended": rec.get("ended"), "duration_s": rec.get("duration_s"), "status": rec.get("status"),
        "source": rec.get("source"),
        "ivr": _redact_value(ivr, redact) if ivr else None,
        "call_type": rec.get("call_type") if rec.get("call_type") is not None else summary.get("call_type"),
        "summary": rec.get("summary") if rec.get("summary") is not None else summary.get("summary"),
        "language": card.get("language"),
        "items": items,
        "steps": steps,
        "flow": {"flow": card.get("flow"), "completion": card.get("completion")} if card.get("flow") else None,
        "ticket": effective_ticket(ticket, rec.get("corrections") or [], mask_char),
        "corrections": corrections,
        "scorecard": {k: card.get(k) for k in ("form", "score", "passed", "items", "figures")} if card else None,
        "flags": rec.get("flags") or [],
        "counts": rec.get("counts") or {},
    }


def call_row(rec: dict[str, Any]) -> dict[str, Any]:
    """One line of a call list (no events needed)."""
    card = rec.get("scorecard") or {}
    return {"call_id": rec.get("call_id"), "line": rec.get("line"), "agent": rec.get("agent"),
            "started": rec.get("started"), "duration_s": rec.get("duration_s"), "status": rec.get("status"),
            "call_type": rec.get("call_type"), "score": card.get("score"), "passed": card.get("passed"),
            "alerts": (rec.get("counts") or {}).get("alert", 0), "corrections": len(rec.get("corrections") or []),
            "flags": len(rec.get("flags") or [])}


# ---------------------------------------------------------------- text (rich)

def _clock(t: Any) -> str:
    if not isinstance(t, (int, float)):
        return "  -  "
    s = int(max(0.0, t))
    return f"{s // 60:2d}:{s % 60:02d}"


def _local(iso: Any) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return str(iso or "-")


def _value(v: Any) -> str:
    return "-" if v is None else str(v)


def render(tl: dict[str, Any], lang: str = "en") -> list:
    """The timeline as rich renderables, top to bottom (CLI and TUI alike)."""
    from rich.table import Table
    from rich.text import Text

    L = LABELS.get(lang, LABELS["en"])
    out: list = []
    head = Text()
    head.append(f"{L['call']} {tl.get('call_id')}", style="bold")
    head.append(f"  {L['line']} {tl.get('line')}  {L['agent']} {tl.get('agent') or '-'}  "
                f"{L['started']} {_local(tl.get('started'))}  {L['duration']} {_clock(tl.get('duration_s')).strip()}"
                f"  {L['status']} {tl.get('status') or '-'}")
    if tl.get("call_type"):
        head.append(f"  {L['type']} {tl['call_type']}", style="bold cyan")
    out.append(head)
    if tl.get("ivr"):
        ivr = Text(f"{L['ivr']}: ", style="bold")
        ivr.append(", ".join(f"{k}={v}" for k, v in tl["ivr"].items()))
        out.append(ivr)
    if tl.get("summary"):
        s = Text(f"\n{L['summary']}\n", style="bold")
        s.append(str(tl["summary"]))
        out.append(s)

    t = Table(title=L["timeline"], title_justify="left", show_header=False, box=None, pad_edge=False,
              expand=True)
    t.add_column(width=5, style="dim")
    t.add_column(width=10, no_wrap=True)
    t.add_column(ratio=1)
    for it in tl.get("items") or []:
        k = it["kind"]
        if k == "turn":
            who = it.get("speaker") or "?"
            t.add_row(_clock(it.get("t")), Text(who, style="bold cyan" if who == "agent" else "bold magenta"),
                      it.get("text") or "")
        elif k == "alert":
            sev = it.get("severity") or "warning"
            body = Text(f"⚠ {it.get('alert')}: {it.get('message')}",
                        style={"critical": "bold red", "warning": "yellow"}.get(sev, "cyan"))
            if it.get("acked_by"):
                body.append(f"  ✓ {it['acked_by']}", style="green")
            t.add_row(_clock(it.get("t")), Text("alert", style="yellow"), body)
        elif k == "suggestion":
            t.add_row(_clock(it.get("t")), Text("cue", style="cyan"),
                      Text(f"★ {it.get('type')}: {it.get('title')}", style="cyan"))
        elif k == "step":
            t.add_row(_clock(it.get("t")), Text("step", style="green"), Text(f"✓ {it.get('title')}", style="green"))
        elif k == "flag":
            t.add_row(_clock(it.get("t")), Text("flag", style="bold red"),
                      f"⚑ {it.get('reason')} by {it.get('by')} {it.get('note') or ''}".rstrip())
    if not tl.get("items"):
        t.add_row("", "", L["none"])
    out.append(Text(""))
    out.append(t)

    if tl.get("steps"):
        st = Text(f"\n{L['steps']}", style="bold")
        if tl.get("flow"):
            st.append(f"  {tl['flow'].get('flow')} {round(100 * (tl['flow'].get('completion') or 0))}%",
                      style="dim")
        for s in tl["steps"]:
            st.append("\n  ")
            st.append("✓ " if s.get("done") else "✗ ", style="green" if s.get("done") else "red")
            st.append(f"{s.get('title')}  ")
            st.append(_clock(s.get("t")).strip() if s.get("done") else L["not_done"], style="dim")
        out.append(st)

    tk = tl.get("ticket")
    if tk:
        tt = Table(title=f"{L['ticket']}: {tk.get('title')}", title_justify="left", expand=True)
        tt.add_column("field", no_wrap=True)
        tt.add_column("value", ratio=1)
        tt.add_column("evidence", ratio=2, style="dim")
        for f in tk["fields"]:
            val = Text(_value(f["value"]))
            if f.get("due"):
                val.append(f" (by {f['due']})", style="dim")
            if f.get("corrected"):
                val.append(f"\n✎ {L['corrected']} {f['corrected'].get('by')}; {L['extracted']} "
                           f"{_value(f.get('extracted'))}", style="yellow")
            ev = f.get("evidence") or ""
            if f.get("t") is not None and ev:
                ev = f"{_clock(f['t']).strip()} {ev}"
            tt.add_row(str(f.get("title") or f["name"]), val, ev)
        out.append(Text(""))
        out.append(tt)
        if tk.get("missing_required"):
            out.append(Text(f"{L['missing']}: {', '.join(tk['missing_required'])}", style="yellow"))

    card = tl.get("scorecard")
    if card and card.get("items"):
        score = card.get("score")
        ct = Table(title=f"{L['scorecard']} ({card.get('form')}): {L['score']} {_value(score)}"
                         f" {L['passed'] if card.get('passed') else L['failed'] if card.get('passed') is False else ''}",
                   title_justify="left", expand=True)
        ct.add_column("item", no_wrap=True)
        ct.add_column("points", justify="right", no_wrap=True)
        ct.add_column("evidence", ratio=1, style="dim")
        for i in card["items"]:
            pts = f"{i['points']:g}/{i['weight']:g}" if i.get("applies") else L["n_a"]
            ev = ", ".join(f"{k}={v}" for k, v in (i.get("evidence") or {}).items() if v not in ([], None, {}))
            ct.add_row(str(i.get("title") or i.get("id")),
                       Text(pts, style="" if not i.get("applies") or i["points"] >= i["weight"] else "yellow"), ev)
        out.append(Text(""))
        out.append(ct)
        fig = card.get("figures") or {}
        if fig:
            ft = Text(f"{L['figures']}: ", style="bold")
            ft.append("; ".join(f"{k} {v}" for k, v in fig.items()))
            out.append(ft)
    return out


def render_text(tl: dict[str, Any], lang: str = "en", width: int = 120) -> str:
    """The rendered timeline as plain text (tests, logs)."""
    import io

    from rich.console import Console

    con = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    for part in render(tl, lang):
        con.print(part)
    return con.export_text()
