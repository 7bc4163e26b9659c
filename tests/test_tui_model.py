"""The supervisor's state model and its text views, driven with plain contract messages."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from callcue.daemon import contract
from callcue.tui import views
from callcue.tui.i18n import HELP, TEXT, describe, t
from callcue.tui.model import FEED_MAX, MOOD_HALF_LIFE_S, FloorModel, agitation_level

T0 = 1_800_000_000.0          # a fixed wall clock; the model never reads the real one
ROOT = contract.root("hq", "f3")


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def feed(model: FloorModel, msg: contract.Message, now: float, root: str = ROOT):
    return model.apply(f"{root}/{msg.subtopic}", msg.encode(), now)


def state(model, line, status, call_id=None, since=T0, agent="Alice", now=None, root=ROOT):
    return feed(model, contract.line_state(line, agent, call_id, status, iso(since)), now or since, root)


def alert(model, line, call_id, kind, severity="warning", speaker="agent", t0=1.0, t1=2.0, evidence=None,
          now=T0, root=ROOT):
    msg = contract.alert(line, call_id, kind, severity, speaker, t0, t1, f"{kind} on {line}", evidence or {})
    feed(model, msg, now, root)
    return msg.payload["id"], msg


def cmd(model, line, body, now=T0, root=ROOT):
    return model.apply(f"{root}/line/{line}/cmd", json.dumps(body).encode(), now)


def test_state_and_duration_come_from_the_retained_line_state():
    m = FloorModel()
    assert state(m, "301", "in_call", "c1", since=T0 - 125) == ("hq", "f3", "301")
    state(m, "302", "idle", since=T0 - 10, agent="Bob")
    rows = {r.key[2]: r for r in m.rows(T0)}
    assert rows["301"].status == "in_call" and rows["301"].agent == "Alice"
    assert rows["301"].duration == pytest.approx(125)
    assert rows["302"].status == "idle" and rows["302"].duration is None
    # a line going down mid-call keeps the call's start (its `since` is the outage time)
    state(m, "301", "down", "c1", since=T0 - 5)
    assert m.row(m.line(("hq", "f3", "301")), T0).duration == pytest.approx(125)
    assert views.fmt_dur(125) == "2:05" and views.fmt_dur(3725) == "1:02:05"


def test_alerts_are_deduplicated_counted_sorted_by_risk_and_acknowledged_from_the_cmd_topic():
    m = FloorModel()
    for line, dur in (("301", 300), ("302", 60), ("303", 30), ("304", 0)):
        state(m, line, "in_call" if dur else "idle", f"c{line}" if dur else None, since=T0 - (dur or 5))
    warn_id, warn = alert(m, "302", "c302", "talk_over", "warning")
    feed(m, warn, T0 + 1)                      # QoS 1 redelivery: same id
    crit_id, _ = alert(m, "303", "c303", "agitation", "critical", "customer",
                       evidence={"pitch_up_st": 6.0, "loudness_up_db": 5.0}, now=T0 + 2)
    rows = m.rows(T0 + 3)
    assert [r.key[2] for r in rows] == ["303", "302", "301", "304"]      # risk, then longest call, idle last
    r303 = rows[0]
    assert r303.open_alerts == 1 and r303.worst == "critical" and r303.last_alert == "agitation"
    assert rows[1].open_alerts == 1 and rows[1].worst == "warning"
    assert [a.id for a in m.feed()] == [crit_id, warn_id]                # newest first, once each

    # an acknowledgement seen on the cmd topic (from any supervisor) closes the alert
    cmd(m, "303", {"op": "ack_alert", "alert_id": crit_id, "by": "sup2@desk"})
    assert m.alert(crit_id).acked_by == "sup2@desk"
    rows = m.rows(T0 + 3)
    assert {r.key[2]: r.open_alerts for r in rows}["303"] == 0
    assert rows[0].key[2] == "303"            # the customer is still upset: mood keeps it high
    # an ack that arrives before its alert (QoS 1 across topics) is applied when the alert comes
    cmd(m, "301", {"op": "ack_alert", "alert_id": "early1", "by": "sup1"})
    feed(m, contract.Message("line/301/alert", {**warn.payload, "id": "early1", "call_id": "c301"}), T0 + 4)
    assert m.alert("early1").acked_by == "sup1"
    stats = m.stats(T0 + 5)
    assert stats.in_call == 3 and stats.idle == 1 and stats.open_alerts == 1


def test_open_alerts_of_an_ended_call_stay_until_acknowledged_but_weigh_less():
    m = FloorModel()
    state(m, "1", "in_call", "a", since=T0)
    aid, _ = alert(m, "1", "a", "talk_over", "warning", now=T0 + 5)
    live_risk = m.rows(T0 + 6)[0].risk
    state(m, "1", "idle", None, since=T0 + 10)
    row = m.rows(T0 + 11)[0]
    assert row.status == "idle" and row.open_alerts == 1 and 0 < row.risk < live_risk
    cmd(m, "1", {"op": "ack_alert", "alert_id": aid, "by": "x"})
    assert m.rows(T0 + 12)[0].open_alerts == 0
    # the next call starts clean
    state(m, "1", "in_call", "b", since=T0 + 20)
    assert m.rows(T0 + 21)[0].open_alerts == 0


def test_partials_are_replaced_by_finals_and_the_transcript_stays_in_call_order():
    m = FloorModel()
    state(m, "7", "in_call", "c", since=T0)
    key = ("hq", "f3", "7")
    seq = iter(range(1, 100))

    def tr(speaker, text, final, t0, t1, now):
        feed(m, contract.transcript("7", "c", speaker, text, final, t0, t1, next(seq)), now)

    tr("customer", "I want", False, 1.0, 1.6, T0 + 2)
    tr("customer", "I want to cancel", False, 1.0, 2.2, T0 + 2.5)
    call = m.line(key).current
    assert [(u.text, u.final) for u in call.transcript()] == [("I want to cancel", False)]
    tr("agent", "Sorry to", False, 2.5, 3.0, T0 + 3)
    assert m.speaking(m.line(key), T0 + 3.1) == "both"
    tr("customer", "I want to cancel my policy", True, 1.0, 2.4, T0 + 3.2)
    tr("agent", "Sorry to hear that", True, 2.5, 3.4, T0 + 3.6)
    texts = [(u.speaker, u.text, u.final) for u in call.transcript()]
    assert texts == [("customer", "I want to cancel my policy", True), ("agent", "Sorry to hear that", True)]
    # a final that arrives late for an earlier utterance lands in call order; a redelivery is dropped
    msg = contract.transcript("7", "c", "agent", "Hello", True, 0.1, 0.8, 99)
    feed(m, msg, T0 + 4)
    feed(m, msg, T0 + 4.1)
    assert [u.text for u in call.transcript()] == ["Hello", "I want to cancel my policy", "Sorry to hear that"]
    assert m.speaking(m.line(key), T0 + 5.5) == "agent"     # the customer's last words are 2.3 s old
    assert m.speaking(m.line(key), T0 + 10) == ""


def test_speaking_from_talk_over_and_silence_alerts_without_transcripts():
    m = FloorModel()
    state(m, "1", "in_call", "c", since=T0)
    line = m.line(("hq", "f3", "1"))
    alert(m, "1", "c", "talk_over", now=T0 + 5)
    assert m.speaking(line, T0 + 6) == "both"
    alert(m, "1", "c", "long_silence", speaker=None, now=T0 + 12)
    assert m.speaking(line, T0 + 13) == "silence"
    assert m.speaking(line, T0 + 40) == ""          # the silence mark fades
    state(m, "1", "idle", None, since=T0 + 50)
    assert m.speaking(line, T0 + 50) == ""


def test_customer_mood_from_agitation_evidence_fades_with_time():
    assert agitation_level({"pitch_up_st": 3.0, "loudness_up_db": 2.5}, "warning") == pytest.approx(0.5)
    assert agitation_level({"pitch_up_st": 9.0, "loudness_up_db": 9.0}, "warning") == 1.0
    assert agitation_level({}, "critical") == pytest.approx(0.8)
    m = FloorModel()
    state(m, "1", "in_call", "c", since=T0)
    line = m.line(("hq", "f3", "1"))
    alert(m, "1", "c", "agitation", speaker="agent", evidence={"pitch_up_st": 6, "loudness_up_db": 5})
    assert m.mood(line, T0) == 0.0                   # the agent's agitation is not the customer's mood
    alert(m, "1", "c", "agitation", speaker="customer", t0=10, t1=14,
          evidence={"pitch_up_st": 6, "loudness_up_db": 5}, now=T0 + 20)
    assert m.mood(line, T0 + 20) == pytest.approx(1.0)
    assert m.mood(line, T0 + 20 + MOOD_HALF_LIFE_S) == pytest.approx(0.5)
    spark = line.current.agitation("customer", 10, 20.0)
    assert spark[:5] == [0.0] * 5 and spark[5] == pytest.approx(1.0) and spark[7] == pytest.approx(1.0)


def test_floor_stats_alerts_in_the_last_hour_and_average_handle_time():
    m = FloorModel()
    state(m, "1", "in_call", "a", since=T0)
    state(m, "1", "idle", None, since=T0 + 100)
    state(m, "2", "in_call", "b", since=T0 + 10)
    state(m, "2", "in_call", "b2", since=T0 + 310)     # call_start superseding a call ends it too
    state(m, "3", "in_call", "c", since=T0 + 300)
    alert(m, "1", "a", "talk_over", now=T0 + 50)
    alert(m, "2", "b", "talk_over", now=T0 + 60)
    alert(m, "2", "b", "long_silence", speaker=None, now=T0 + 3000)
    s = m.stats(T0 + 3655)                     # the alert at +50 s is more than an hour old
    assert s.alerts_last_hour == {"talk_over": 1, "long_silence": 1}
    assert s.aht_n == 2 and s.aht_s == pytest.approx((100 + 300) / 2)
    assert s.in_call == 2 and s.idle == 1 and s.lines == 3
    s = m.stats(T0 + 6500)
    assert s.alerts_last_hour == {"long_silence": 1} and s.aht_n == 0 and s.aht_s is None


def test_box_offline_marks_its_lines_down_and_flags_and_several_floors_are_kept_apart():
    m = FloorModel()
    other = contract.root("hq", "f4")
    state(m, "1", "in_call", "c1", since=T0)
    state(m, "1", "in_call", "x1", since=T0, root=other)
    m.apply(f"{ROOT}/box/nuc3/health", json.dumps({"lines": {"1": {"status": "in_call"}}}).encode(), T0)
    m.apply(f"{ROOT}/box/nuc3/status", b"online", T0)
    assert m.row(m.line(("hq", "f3", "1")), T0).status == "in_call"
    m.apply(f"{ROOT}/box/nuc3/status", b"offline", T0 + 1)
    assert m.row(m.line(("hq", "f3", "1")), T0 + 1).status == "down"
    assert m.row(m.line(("hq", "f4", "1")), T0 + 1).status == "in_call"     # same line id, other floor
    s = m.stats(T0 + 2)
    assert s.boxes_offline == 1 and s.down == 1 and s.floors == (("hq", "f3"), ("hq", "f4"))
    cmd(m, "1", {"op": "flag", "reason": "takeover", "by": "sup", "call_id": "x1"}, root=other)
    rows = m.rows(T0 + 3)
    assert rows[0].key == ("hq", "f4", "1") and rows[0].flag == "takeover"
    # an empty retained state (line removed from the box) removes the row
    m.apply(f"{other}/line/1/state", b"", T0 + 4)
    assert ("hq", "f4", "1") not in m.lines


def test_malformed_messages_are_counted_not_raised():
    m = FloorModel()
    assert m.apply(f"{ROOT}/line/1/alert", b"not json", T0) is None
    assert m.apply(f"{ROOT}/line/1/state", b'{"status": "dancing"}', T0) is None
    assert "dancing" in m.last_error and m.last_error.startswith(f"{ROOT}/line/1/state")
    assert m.apply(f"{ROOT}/line/1/transcript", b"[1, 2]", T0) is None
    assert m.apply(f"{ROOT}/line/1/state", b"\xff\xfe", T0) is None
    assert m.apply(f"{ROOT}/line/1/alert", b'{"id": "x", "t_start": "soon"}', T0) is None
    assert m.rejected == 5
    assert m.lines == {} and m.version == 0 and m.feed() == []
    assert m.apply("other/topic/entirely/x/y/z", b"{}", T0) is None and m.rejected == 5
    state(m, "1", "idle")
    assert m.rows(T0)[0].status == "idle"


def test_the_feed_flow_suggestions_and_summary_are_bounded_and_kept_per_call():
    m = FloorModel()
    state(m, "1", "in_call", "c", since=T0)
    for i in range(FEED_MAX + 100):
        alert(m, "1", "c", "fast_speech", "info", now=T0 + i)
    assert len(m.feed()) == FEED_MAX
    flow = {"call_id": "c", "flow": "claim", "steps": [{"id": "greet", "title": "Greet", "done": True},
                                                       {"id": "verify", "title": "Verify", "done": False}],
            "completion": 0.5, "next_step": {"id": "verify", "title": "Verify identity"}}
    m.apply(f"{ROOT}/line/1/flow", json.dumps(flow).encode(), T0)
    sug = {"id": "s1", "call_id": "c", "kind": "knowledge", "title": "Claim status", "body": "Tell them 5 days",
           "score": 0.82, "article": "Claims are settled within five working days."}
    m.apply(f"{ROOT}/line/1/suggestion", json.dumps(sug).encode(), T0)
    m.apply(f"{ROOT}/line/1/suggestion", json.dumps(sug).encode(), T0)
    m.apply(f"{ROOT}/line/1/summary", json.dumps({"call_id": "c", "summary": "done"}).encode(), T0)
    call = m.line(("hq", "f3", "1")).current
    assert call.flow["completion"] == 0.5 and len(call.suggestions) == 1 and call.summary["summary"] == "done"
    text = views.flow_text(call.flow, "en").plain
    assert "50%" in text and "✓Greet" in text and "Verify identity" in text
    sug_text = views.suggestion_text(call.suggestions[0], "en").plain
    assert "Tell them 5 days" in sug_text and "five working days" in sug_text


def test_views_render_rows_timeline_and_both_languages():
    m = FloorModel()
    state(m, "9", "in_call", "c", since=T0 - 100)
    alert(m, "9", "c", "talk_over", "warning", t0=50.0, t1=52.0, evidence={"overlap_s": 2.0}, now=T0)
    row = m.rows(T0)[0]
    en = [c.plain if hasattr(c, "plain") else c for c in views.board_cells(row, "en", False)]
    zh = [c.plain if hasattr(c, "plain") else c for c in views.board_cells(row, "zh", False)]
    assert en[0] == "9" and en[2] == "in call" and en[3] == "1:40" and en[7] == "talk over"
    assert zh[2] == "通话中" and zh[7] == "抢插话"
    assert views.board_cells(row, "en", True)[0] == "f3/9"
    tl = views.timeline(m.line(("hq", "f3", "9")).current, 80, "en", T0).plain.split("\n")
    marks = tl[2]
    bar = marks[marks.index("│") + 1: marks.rindex("│")]
    assert bar.strip() == "T" and abs(bar.index("T") / len(bar) - 0.5) < 0.03   # at 50 s of 100 s
    assert describe("talk_over", "x", "agent", {"overlap_s": 1.42}, "zh") == "坐席抢插话 1.4 秒"
    assert describe("talk_over", "Agent talked over", "agent", {}, "en") == "Agent talked over"
    # agitation judged before the customer had calm speech says what it was judged against
    first = {"reference": "other_party", "pitch_up_st": None, "effort_up_db": 2.4, "loudness_up_db": 6.1}
    assert describe("agitation", "x", "customer", first, "zh") == "客户一开口就情绪激动: 发声用力比平静嗓音 +2.4 dB, 响度比对方 +6.1 dB"
    assert describe("agitation", "x", "customer", dict(first, reference="prior", loudness_up_db=None), "zh") \
        == "客户一开口就情绪激动: 发声用力比平静嗓音 +2.4 dB"
    # every UI string exists in both languages
    assert all(set(v) == {"en", "zh"} for v in TEXT.values())
    assert len(HELP["en"]) == len(HELP["zh"])
    assert t("stats_calls", "zh", n=3, total=9) == "通话 3/9"


def test_a_long_call_keeps_a_bounded_transcript():
    from callcue.tui.model import TRANSCRIPT_MAX
    m = FloorModel()
    state(m, "1", "in_call", "c", since=T0)
    for i in range(TRANSCRIPT_MAX + 50):
        feed(m, contract.transcript("1", "c", "agent", f"u{i}", True, i, i + 0.5, i + 1), T0 + i)
    call = m.line(("hq", "f3", "1")).current
    assert len(call.finals) == TRANSCRIPT_MAX and call.finals[0].text == "u50"
    assert len(call._seqs) == TRANSCRIPT_MAX
