"""Stores -> figures (queries.py) -> one HTML file (page.py, charts.py) and CSV tables."""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from . import queries as q
from .charts import Charts
from .i18n import alert_name, issue_kind, t
from .page import anchor, esc, fmt, page, table, timeline


def _name(v: Any, lang: str) -> str:
    return t("unknown", lang) if v in (None, "") else str(v)


def _div(a, b):
    return (a or 0) / b if b else None


def _figures(g: dict[str, Any]) -> dict[str, Any]:
    """The per-call figures of a group of calls (queries.groups, merged)."""
    return {"calls": g["calls"], "avg_qa": _div(g["qa_sum"], g["qa_n"]), "pass_rate": _div(g["pass_sum"], g["pass_n"]),
            "avg_handle_s": _div(g["dur_sum"], g["dur_n"]), "talk_ratio": _div(g["ratio_sum"], g["ratio_n"]),
            "dead_air_share": _div(g["dead_sum"], g["dead_base"]), "agitation_share": _div(g["agitated"], g["ag_n"]),
            "agitation_time_share": _div(g["ag_sum"], g["ag_base"]), "flow_completion": _div(g["flow_sum"], g["flow_n"]),
            "alerts_per_100": 100 * _div(g["alerts_sum"], g["alerts_n"]) if g["alerts_n"] else None}


FIG_COLS = [("calls", "int"), ("avg_qa", "f1"), ("pass_rate", "pct"), ("avg_handle_s", "min"), ("talk_ratio", "f2"),
            ("dead_air_share", "pct"), ("agitation_share", "pct"), ("agitation_time_share", "pct"),
            ("flow_completion", "pct"), ("alerts_per_100", "f1")]
FIG_LABELS = {"calls": "calls", "avg_qa": "avg_qa", "pass_rate": "pass_rate", "avg_handle_s": "avg_handle",
              "talk_ratio": "talk_ratio", "dead_air_share": "dead_air_share", "agitation_share": "agitation_share",
              "agitation_time_share": "agitation_s_share", "flow_completion": "flow_completion",
              "alerts_per_100": "alerts_100"}


def build_report(stores: list[Path], out: Path, lang: str = "en", day_from: str | None = None,
                 day_to: str | None = None, csv_dir: Path | None = None, calls_per_agent: int = 20,
                 max_calls: int = 3000, threads: int | None = None) -> dict[str, Any]:
    """`threads`: aggregation queries at once (None: one per core)."""
    db = q.open_sources(stores, day_from, day_to)
    # every big aggregation starts now, in parallel; each section waits for its own
    par = q.Parallel(stores, day_from, day_to, {
        "groups": q.groups, "days": q.days, "issues": q.issues, "steps": q.missed_steps,
        "alerts": q.alerts_by_agent, "offers": q.offers_by_agent}, threads)
    try:
        return _build(db, par, stores, out, lang, day_from, day_to, csv_dir, calls_per_agent, max_calls)
    finally:
        par.close()
        db.close()


def _build(db, par, stores, out, lang, day_from, day_to, csv_dir, calls_per_agent, max_calls) -> dict[str, Any]:
    charts = Charts()
    csv_tables: list[q.Table] = []
    L = lambda k: t(k, lang)          # noqa: E731
    sections: list[str] = []
    nav: list[tuple[str, str]] = []

    def section(aid: str, title: str, body: str) -> None:
        nav.append((aid, title))
        sections.append(f'<section id="{aid}"><h2>{esc(title)}</h2>{body}</section>')

    # ---- one pass over the calls; everything per team, agent, flow adds up from it ----
    gs = par.get("groups")
    tot = q.merge(gs, lambda g: 0).get(0)
    team_g = q.merge(gs, lambda g: g["team"])
    agent_g = q.merge(gs, lambda g: (g["team"], g["agent"]))
    flow_g = q.merge([g for g in gs if g["flow"] is not None], lambda g: g["flow"])
    offer_rows = par.get("offers")
    h = _figures(tot or {name: 0 for name, _ in q.SUMS})
    h.update(agents=len({g["agent"] for g in gs}), teams=len({g["team"] for g in gs}),
             floors=len({(g["site"], g["floor"]) for g in gs}), audio_s=tot["dur_sum"] if tot else None,
             first_day=tot["first_day"] if tot else None, last_day=tot["last_day"] if tot else None)
    opp = sum(r[3] for r in offer_rows)
    h["pitch_rate"] = _div(sum(r[5] or 0 for r in offer_rows), opp) if opp else None
    h["avg_handle_s"] = h.get("avg_handle_s")
    cards = [("calls", h["calls"], "int"), ("agents", h["agents"], "int"), ("teams", h["teams"], "int"),
             ("floors", h["floors"], "int"), ("audio_h", h["audio_s"], "h"), ("avg_qa", h["avg_qa"], "f1"),
             ("pass_rate", h["pass_rate"], "pct"), ("avg_handle", h["avg_handle_s"], "min"),
             ("alerts_100", h["alerts_per_100"], "f1"), ("pitch_rate", h["pitch_rate"], "pct"),
             ("flow_completion", h["flow_completion"], "pct"), ("agitation_share", h["agitation_share"], "pct"),
             ("dead_air_share", h["dead_air_share"], "pct"), ("talk_ratio", h["talk_ratio"], "f2")]
    body = '<div class="cards">' + "".join(
        f'<div class="card"><div class="v" id="h-{k}" data-v="{"" if v is None else v}">{esc(fmt(v, kind))}</div>'
        f'<div class="k">{esc(L(k))}</div></div>' for k, v, kind in cards) + "</div>"
    body += f'<p class="note">{esc(L("sort_hint"))} {esc(L("csv_note"))}</p>'
    section("headline", L("headline"), body)
    csv_tables.append(q.Table("headline", ["figure", "value"], [(k, v) for k, v, _ in cards]))
    if not h.get("calls"):
        sections.append(f'<section><p>{esc(L("no_data"))}</p></section>')

    # ---- trends ----
    days = par.get("days")
    csv_tables.append(days)
    if days.rows:
        body = charts.trend([r[0] or "" for r in days.rows], [r[1] for r in days.rows], [r[2] for r in days.rows],
                            L("trends"), L("calls"), L("avg_qa"))
        body += table([(L("day"), "t"), (L("calls"), "int"), (L("avg_qa"), "f1"), (L("avg_handle"), "min"),
                       (L("alerts_100"), "f1"), (L("agitation_share"), "pct"), (L("flow_completion"), "pct")],
                      days.rows, tid="t-days")
        section("trends", L("trends"), body)

    # ---- issues ----
    iss = par.get("issues")
    csv_tables.append(iss)

    def issue_label(kind: str, issue: str) -> str:
        return alert_name(issue, lang) if kind == "alert" else issue
    irows = [(issue_kind(k, lang), issue_label(k, i), c, a, _div(c, h["calls"])) for k, i, c, a in iss.rows]
    body = ""
    if irows:
        top = irows[:12]
        body += '<div class="grid2">' + charts.bars([f"{r[1]} ({r[0]})" for r in top], [r[2] for r in top],
                                                     L("issues_by_freq"), L("calls"))
        by_agents = sorted(irows, key=lambda r: (-r[3], -r[2]))[:12]
        body += charts.bars([f"{r[1]} ({r[0]})" for r in by_agents], [r[3] for r in by_agents], L("issues_by_agents"),
                            L("agents"), color="#dd6b20") + "</div>"
        cols = [(L("kind"), "t"), (L("issue"), "t"), (L("calls"), "int"), (L("agents"), "int"), (L("share_calls"), "pct")]
        body += f"<h3>{esc(L('issues_by_freq'))}</h3>" + table(cols, irows, tid="t-issues")
        body += f"<h3>{esc(L('issues_by_agents'))}</h3>" + table(cols, by_agents + sorted(irows, key=lambda r: (-r[3], -r[2]))[12:],
                                                                 tid="t-issues-agents")
    section("issues", L("issues"), body or f"<p>{esc(L('no_data'))}</p>")

    # ---- per team / agent figures, alerts per 100 calls ----
    team_fig = {tm: _figures(g) for tm, g in sorted(team_g.items(), key=lambda x: (x[0] is None, x[0] or ""))}
    agent_fig = {k: _figures(g) for k, g in sorted(agent_g.items(), key=lambda x: (x[0][0] or "", x[0][1] or ""))}
    team_alerts = defaultdict(dict)
    agent_alerts = defaultdict(dict)
    for team, agent, kind, n in par.get("alerts"):
        agent_alerts[(team, agent)][kind] = n
        team_alerts[team][kind] = team_alerts[team].get(kind, 0) + n
    kinds = sorted({k for d in team_alerts.values() for k in d})
    known_team = {tm: g["alerts_n"] for tm, g in team_g.items()}
    known_agent = {k: g["alerts_n"] for k, g in agent_g.items()}
    t_rows = [(_name(tm, lang), known_team[tm], *[100 * _div(team_alerts[tm].get(k, 0), known_team[tm])
                                                  if known_team[tm] else None for k in kinds]) for tm in team_fig]
    a_rows = [(_name(tm, lang), _name(ag, lang), known_agent[(tm, ag)],
               *[100 * _div(agent_alerts[(tm, ag)].get(k, 0), known_agent[(tm, ag)]) if known_agent[(tm, ag)] else None
                 for k in kinds]) for tm, ag in agent_fig]
    csv_tables.append(q.Table("alerts_per_100_by_team", ["team", "calls"] + kinds, t_rows))
    csv_tables.append(q.Table("alerts_per_100_by_agent", ["team", "agent", "calls"] + kinds, a_rows))
    body = ""
    if kinds and team_fig:
        body += charts.grouped([_name(tm, lang) for tm in team_fig],
                               {alert_name(k, lang): [r[2 + i] or 0.0 for r in t_rows] for i, k in enumerate(kinds)},
                               L("alerts_by_kind"), L("alerts_100"))
        kcols = [(alert_name(k, lang), "f1") for k in kinds]
        body += f"<h3>{esc(L('by_team'))}</h3>" + table([(L("team"), "t"), (L("calls"), "int")] + kcols, t_rows,
                                                         tid="t-alerts-team")
        body += f"<h3>{esc(L('by_agent'))}</h3>" + table(
            [(L("team"), "t"), (L("agent"), "t"), (L("calls"), "int")] + kcols, a_rows, tid="t-alerts-agent",
            links={1: lambda r: anchor("agent", r[0], r[1])})
    section("alerts", L("alerts_by_kind"), body or f"<p>{esc(L('no_data'))}</p>")

    # ---- offers ----
    per_offer: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for team, agent, offer, n, fitted, made in offer_rows:
        po = per_offer[offer]
        po[0] += n
        po[1] += fitted or 0
        po[2] += made or 0
    off = q.Table("pitch_rate_by_offer", ["offer", "opportunities", "fitted", "made", "pitch_rate"],
                  sorted(((o, n, f, m, _div(m, n)) for o, (n, f, m) in per_offer.items()), key=lambda r: (-r[1], r[0])))
    off_a = q.Table("pitch_rate_by_agent", ["team", "agent", "offer", "opportunities", "made", "pitch_rate"],
                    [(tm, ag, o, n, m or 0, _div(m, n)) for tm, ag, o, n, f, m in offer_rows])
    csv_tables += [off, off_a]
    body = ""
    if off.rows:
        body += charts.bars([r[0] for r in off.rows], [r[4] for r in off.rows], L("pitch_rate"), percent=True,
                            color="#38a169")
        body += table([(L("offer"), "t"), (L("opportunities"), "int"), (L("fitted"), "int"), (L("made"), "int"),
                       (L("pitch_rate"), "pct")], off.rows, tid="t-offers")
        body += f"<h3>{esc(L('by_agent'))}</h3>" + table(
            [(L("team"), "t"), (L("agent"), "t"), (L("offer"), "t"), (L("opportunities"), "int"), (L("made"), "int"),
             (L("pitch_rate"), "pct")], [(_name(r[0], lang), _name(r[1], lang), *r[2:]) for r in off_a.rows],
            tid="t-offers-agent", links={1: lambda r: anchor("agent", r[0], r[1])})
    section("offers", L("offers"), body or f"<p>{esc(L('no_data'))}</p>")

    # ---- flows ----
    fl = q.Table("flow_completion", ["flow", "calls", "completion", "complete_calls"],
                 sorted(((f, g["calls"], _div(g["flow_sum"], g["flow_n"]), g["flow_full"]) for f, g in flow_g.items()),
                        key=lambda r: (-r[1], r[0])))
    ms = par.get("steps")
    csv_tables += [fl, ms]
    body = ""
    if fl.rows:
        body += '<div class="grid2">' + charts.bars([r[0] for r in fl.rows], [r[2] or 0 for r in fl.rows],
                                                     L("flow_completion"), percent=True)
        top = [r for r in ms.rows if r[2]][:12]
        body += (charts.bars([r[1] for r in top], [r[4] for r in top], L("most_missed"), percent=True, color="#e53e3e")
                 if top else "") + "</div>"
        body += table([(L("flow"), "t"), (L("calls"), "int"), (L("flow_completion"), "pct"), (L("done"), "int")],
                      fl.rows, tid="t-flows")
        body += f"<h3>{esc(L('most_missed'))}</h3>" + table(
            [(L("flow"), "t"), (L("step"), "t"), (L("missed"), "int"), (L("calls"), "int"), (L("missed_share"), "pct")],
            ms.rows, tid="t-steps")
    section("flows", L("flows"), body or f"<p>{esc(L('no_data'))}</p>")

    # ---- distributions per team: QA, handle time, talk/listen, dead air ----
    def dist(name: str, _buckets=None) -> tuple[list[str], list[list[int]], list[tuple]]:
        teams = [tm for tm in team_fig if sum(team_g[tm][name])]
        csv_rows = [(_name(tm, lang), *team_g[tm][name]) for tm in teams]
        return [_name(tm, lang) for tm in teams], [team_g[tm][name] for tm in teams], csv_rows

    labels = [b[2] for b in q.QA_BUCKETS]
    groups, counts, crow = dist("qa")
    csv_tables.append(q.Table("qa_distribution_by_team", ["team"] + labels, crow))
    body = ""
    if groups:
        body += charts.stacked_share(groups, labels, counts, L("qa_dist"))
        body += table([(L("team"), "t")] + [(lb, "int") for lb in labels], crow, tid="t-qa-dist")
    teams_table = [(_name(tm, lang), *[f[c] for c, _ in FIG_COLS]) for tm, f in team_fig.items()]
    csv_tables.append(q.Table("teams", ["team"] + [c for c, _ in FIG_COLS], teams_table))
    body += f"<h3>{esc(L('by_team'))}</h3>" + table([(L("team"), "t")] + [(L(FIG_LABELS[c]), k) for c, k in FIG_COLS],
                                                     teams_table, tid="t-teams")
    section("qa", L("qa"), body)

    hl = [b[2] for b in q.HANDLE_BUCKETS]
    g2, c2, r2 = dist("handle")
    csv_tables.append(q.Table("handle_time_by_team", ["team"] + [f"{x} min" for x in hl], r2))
    tot = [sum(c[i] for c in c2) for i in range(len(hl))]
    body = charts.bars([f"{x} {L('minutes')}" for x in hl], tot, L("handle"), L("calls"), horizontal=False) if g2 else ""
    body += table([(L("team"), "t")] + [(f"{x} {L('minutes')}", "int") for x in hl], r2, tid="t-handle")
    section("handle", L("handle"), body)

    rl = [b[2] for b in q.RATIO_BUCKETS]
    g3, c3, r3 = dist("ratio")
    csv_tables.append(q.Table("talk_ratio_by_team", ["team"] + rl, r3))
    body = charts.bars(rl, [sum(c[i] for c in c3) for i in range(len(rl))], L("talk_ratio"), L("calls"),
                       horizontal=False, color="#805ad5") if g3 else f"<p>{esc(L('no_data'))}</p>"
    body += table([(L("team"), "t")] + [(x, "int") for x in rl], r3, tid="t-talk")
    section("talk", L("talk"), body)

    sl = [b[2] for b in q.SHARE_BUCKETS]
    g4, c4, r4 = dist("dead")
    csv_tables.append(q.Table("dead_air_by_team", ["team"] + sl, r4))
    body = charts.bars(sl, [sum(c[i] for c in c4) for i in range(len(sl))], L("dead_air_share"), L("calls"),
                       horizontal=False, color="#718096") if g4 else f"<p>{esc(L('no_data'))}</p>"
    body += table([(L("team"), "t")] + [(x, "int") for x in sl], r4, tid="t-dead-air")
    section("dead_air", L("dead_air"), body)

    ag = [(_name(tm, lang), f["calls"], f["agitation_share"], f["agitation_time_share"]) for tm, f in team_fig.items()]
    csv_tables.append(q.Table("agitation_by_team", ["team", "calls", "agitated_share", "agitated_time_share"], ag))
    body = charts.bars([r[0] for r in ag], [r[2] or 0 for r in ag], L("agitation_share"), percent=True,
                       color="#e53e3e") if ag else ""
    body += table([(L("team"), "t"), (L("calls"), "int"), (L("agitation_share"), "pct"), (L("agitation_s_share"), "pct")],
                  ag, tid="t-agitation")
    section("agitation", L("agitation"), body)

    # ---- floors and boxes: which floor (and which box on it) the calls came from ----
    floor_g = q.merge(gs, lambda g: (g["site"], g["floor"], g["box"]))
    floor_agents: dict[tuple, set] = defaultdict(set)
    for g in gs:
        floor_agents[(g["site"], g["floor"], g["box"])].add((g["team"], g["agent"]))
    fl_rows = [(_name(st, lang), _name(fl, lang), _name(bx, lang), len(floor_agents[(st, fl, bx)]),
                *[f[c] for c, _ in FIG_COLS])
               for (st, fl, bx), f in sorted(((k, _figures(g)) for k, g in floor_g.items()),
                                             key=lambda x: tuple(v or "" for v in x[0]))]
    csv_tables.append(q.Table("floors", ["site", "floor", "box", "agents"] + [c for c, _ in FIG_COLS], fl_rows))
    body = table([(L("site"), "t"), (L("floor"), "t"), (L("box"), "t"), (L("agents"), "int")] +
                 [(L(FIG_LABELS[c]), k) for c, k in FIG_COLS], fl_rows, tid="t-floors")
    section("floors", L("floors_section"), body if fl_rows else f"<p>{esc(L('no_data'))}</p>")

    # ---- agents, their calls, each call ----
    n_agents = max(1, len(agent_fig))
    per_agent = max(3, min(calls_per_agent, max_calls // n_agents))
    listed = q.agent_calls(db, list(agent_fig), per_agent)
    by_agent: dict[tuple, list[tuple]] = defaultdict(list)
    for r in listed:
        by_agent[(r[3], r[4])].append(r)
    agents_table = [(_name(tm, lang), _name(ag, lang), *[f[c] for c, _ in FIG_COLS]) for (tm, ag), f in agent_fig.items()]
    csv_tables.append(q.Table("agents", ["team", "agent"] + [c for c, _ in FIG_COLS], agents_table))
    body = table([(L("team"), "t"), (L("agent"), "t")] + [(L(FIG_LABELS[c]), k) for c, k in FIG_COLS], agents_table,
                 tid="t-agents", links={1: lambda r: anchor("agent", r[0], r[1])})
    for (tm, ag), f in agent_fig.items():
        calls = by_agent.get((tm, ag), [])
        aid = anchor("agent", _name(tm, lang), _name(ag, lang))
        rows_ = [(c[2], c[5], c[6], c[7], c[8], c[9]) for c in calls]
        body += (f'<div class="agent" id="{aid}"><h3>{esc(L("agent_calls"))} {esc(_name(ag, lang))} '
                 f'({esc(_name(tm, lang))})</h3><p class="note">'
                 f'{esc(L("shown_of").format(n=len(calls), m=f["calls"]))}</p>')
        body += table([(L("call"), "t"), (L("started"), "t"), (L("duration"), "min"), (L("call_type"), "t"),
                       (L("score"), "f1"), (L("alerts"), "int")], rows_, scroll=False,
                      links={0: (lambda r, m={c[2]: (c[0], c[1]) for c in calls}: anchor("call", *m[r[0]]))})
        body += "</div>"
    csv_tables.append(q.Table("agent_calls", ["team", "agent", "call_id", "started", "duration_s", "call_type",
                                              "qa_score", "alerts"],
                              [(r[3], r[4], r[2], r[5], r[6], r[7], r[8], r[9]) for r in listed]))
    section("agents", L("agents_section"), body)

    details = q.call_details(db, [(r[0], r[1]) for r in listed])
    parts = []
    for key in [(r[0], r[1]) for r in listed]:
        d = details.get(key)
        if d is None:
            continue
        c = d["call"]
        back = anchor("agent", _name(c["team"], lang), _name(c["agent"], lang))
        facts = [(L("agent"), _name(c["agent"], lang)), (L("team"), _name(c["team"], lang)),
                 (L("site_floor"), f'{c["site"] or "–"} / {c["floor"] or "–"} / {c["box"] or "–"}'),
                 (L("line"), c["line"] or "–"),
                 (L("started"), c["started"] or "–"), (L("duration"), fmt(c["duration_s"], "min")),
                 (L("lang"), c["lang"] or "–"), (L("call_type"), c["call_type"] or "–"),
                 (L("score"), fmt(c["qa_score"], "f1")), (L("talk_ratio"), fmt(c["talk_ratio"], "f2")),
                 (L("dead_air_share"), fmt(c["dead_air_share"], "pct"))]
        p = [f'<div class="call" id="{anchor("call", *key)}"><h3>{esc(L("call"))} {esc(c["call_id"])} '
             f'<a class="note" href="#{back}">{esc(L("back_agent"))}</a></h3>',
             '<p>' + " · ".join(f"{esc(k)}: <b>{esc(v)}</b>" for k, v in facts) + "</p>"]
        if c["summary"]:
            p.append(f'<pre>{esc(c["summary"])}</pre>')
        p.append(f'<h3>{esc(L("timeline"))}</h3>' + timeline(c["duration_s"], d["alerts"], lang))
        if d["alerts"]:
            p.append(table([(L("alerts"), "t"), (L("speaker"), "t"), (L("severity"), "t"), (L("from_s"), "f1"),
                            (L("to_s"), "f1")],
                           [(alert_name(a[0], lang), a[1], a[2], a[3], a[4]) for a in d["alerts"]], scroll=False))
        if d["items"]:
            p.append(f'<h3>{esc(L("scorecard"))}</h3>' + table(
                [(L("item"), "t"), (L("weight"), "f1"), (L("points"), "f1")],
                [(i[1] or i[0], i[2], i[4] if i[3] else None) for i in d["items"]], scroll=False))
        if d["steps"]:
            p.append(f'<h3>{esc(L("steps"))}</h3><p>' + " · ".join(
                f'<span class="{"good" if s[3] else "bad"}">{esc(s[1])} ({esc(L("done" if s[3] else "not_done"))})</span>'
                for s in d["steps"]) + "</p>")
        if c["ticket"]:
            try:
                tk = json.loads(c["ticket"])
                p.append(f'<h3>{esc(L("ticket"))}</h3><pre>{esc(json.dumps(tk, ensure_ascii=False, indent=1)[:3000])}</pre>')
            except ValueError:
                pass
        p.append(f'<p><a href="#top">{esc(L("back_top"))}</a></p></div>')
        parts.append("".join(p))
    if parts:
        sections.append(f'<section id="calls"><h2>{esc(L("call"))}</h2>{"".join(parts)}</section>')
        nav.append(("calls", L("call")))

    period = f'{day_from or h["first_day"] or "…"} – {day_to or h["last_day"] or "…"}'
    meta = (f'{esc(L("period"))}: {esc(period)} · {esc(L("stores"))}: {esc(", ".join(str(s) for s in stores))} · '
            f'{esc(L("generated"))}: {esc(datetime.now().isoformat(sep=" ", timespec="seconds"))}')
    doc = page(lang, L("title"), meta, nav, sections)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    if csv_dir is not None:
        csv_dir = Path(csv_dir)
        csv_dir.mkdir(parents=True, exist_ok=True)
        for tb in csv_tables:
            with open(csv_dir / f"{tb.name}.csv", "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(tb.headers)
                w.writerows(tb.rows)
    return {"calls": h["calls"], "bytes": len(doc.encode()), "charts": charts.n, "details": len(parts),
            "csv": [tb.name for tb in csv_tables] if csv_dir is not None else []}
