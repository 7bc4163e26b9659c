"""After the call, live (issue 12 phase B): the line hands what it kept to AfterCall at
call end and publishes the filled summary; the store keeps it with the call; a desk
correction goes through the broker into the store; the supervisor TUI and `callcue calls`
look back at a stored call; who may ask is the broker's ACL.

Calls here are driven through the real LineAnalyzer with synthetic audio (prosody, VAD)
and the labelled script's words as the recogniser's finals, so no speech model is
needed; test_aftercall_audio.py does the same through Whisper.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import date
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from callcue.daemon import contract
from callcue.daemon.aftercall.corrections import CorrectionError, check_form_value, check_update
from callcue.daemon.app import Daemon
from callcue.daemon.asr.engine import AsrResult
from callcue.daemon.assist.engine import AssistEngine
from callcue.daemon.assist.redact import RedactionConfig, Redactor
from callcue.daemon.bus.acl import write_acl_dir
from callcue.daemon.bus.broker import free_port
from callcue.daemon.bus.commands import RoleError, parse_command
from callcue.daemon.bus.query import QueryError, parse_query, reply_allowed
from callcue.daemon.config import (AfterCallConfig, AssistConfig, BrokerConfig, CallsConfig, DetectorConfig,
                                   EmbeddedBrokerConfig, LineConfig, SourceConfig, default_config)
from callcue.daemon.eval.aftercall_score import TUNED, build_content, timeline as script_timeline
from callcue.daemon.eval.synth.script import load_script
from callcue.daemon.line import LineAnalyzer
from callcue.daemon.prosody.session import Detectors
from callcue.daemon.replay import iter_blocks
from callcue.daemon.store.calls import CallStore
from callcue.daemon.store.reader import StoreReader
from callcue.daemon.timeline import render_text, timeline
from callcue.tui.agent import AgentApp
from callcue.tui.app import SupervisorApp
from callcue.tui.history import PastCallsScreen, TimelineScreen
from callcue.tui.mqtt import FeedClient, floor_filters
from callcue.tui.ticket import EditScreen, TicketScreen
from conftest import clear_retained, wait_until
from helpers import call, speech, write_wav

SR = 8000
CALL_DATE = date(2026, 3, 10)
SCRIPT = TUNED / "en_01_claim_report_auto_ivr.yaml"      # policy HM44107, callback 415 555 4111, claim C33018
# as a Harbor Mutual site configures it: its policy numbers start with HM (README, "Redaction")
SITE_REDACTION = RedactionConfig(policy_prefixes=["PL", "POL", "保单号", "HM"])
_REDACTOR = Redactor(SITE_REDACTION)


def redact(text: str) -> str:
    return _REDACTOR.redact(text).text


@pytest.fixture(scope="module")
def content():
    return build_content()


def text_call(content, line_id: str, call_id: str, script_path: Path = SCRIPT, *, store: CallStore | None = None,
              mask: bool = False, agent: str = "Priya Shah") -> list[contract.Message]:
    """One call through a real LineAnalyzer: synthetic speech where the script's turns
    are (so the prosody and VAD see the talk), the turns' words as the recogniser's finals
    a moment after each turn ends, then call end and the ASR drain. Returns every message;
    with `store`, the call is recorded as the daemon records it."""
    script = load_script(script_path)
    turns = script_timeline(script)
    end = max(t["t_end"] for t in turns) + 2.0
    parts = [(t["speaker"], t["t_start"], speech(t["t_end"] - t["t_start"], f0=120 if t["speaker"] == "agent" else 210,
                                                  seed=k)) for k, t in enumerate(turns)]
    audio = call(parts, end, SR)
    engine = AssistEngine(content, AssistConfig(knowledge=content.kb is not None))
    line = LineConfig(id=line_id, agent=agent, sample_rate=SR, source=SourceConfig(wav=Path("unused.wav")))
    an = LineAnalyzer(line, CallsConfig(auto=False), Detectors(DetectorConfig(), SR), assist=engine, redact=redact,
                      aftercall=AfterCallConfig(mask_personal=mask), today=lambda: script.expect.call_date)
    out: list[contract.Message] = []

    def sink(msgs):
        for m in msgs:
            out.append(m)
            if store is not None and contract.Route.STORE in m.route:
                store.add_event(m.payload["call_id"], m.output, m.payload)

    ivr = dict(script.expect.ivr) if script.expect.ivr else None
    if store is not None:
        store.start_call(line_id, call_id, agent, contract.now_iso(), "cmd", ivr)
    sink(an.start_call(0.0, "cmd", call_id, agent, ivr))
    pending = sorted(enumerate(turns), key=lambda kt: kt[1]["t_end"])
    for block in iter_blocks(line_id, audio, SR, 0, 1):
        sink(an.feed(block))
        now = block.t + block.duration
        while pending and pending[0][1]["t_end"] + 0.3 <= now:
            k, t = pending.pop(0)
            sink(an.on_asr_result(AsrResult(line_id, t["speaker"], call_id, t["text"], True, t["t_start"],
                                            t["t_end"], k)))
    ended = an.end_call("call_end command")
    if store is not None:
        store.end_call(call_id, contract.now_iso(), end)
    sink(ended.messages)
    assert ended.call.said == [] or ended.call.said     # kept until the summary is due
    sink(an.flush())
    assert ended.call.said == [] and ended.call.record_text is None      # the unredacted text is gone
    return out


def summary_of(msgs) -> dict:
    got = [m.payload for m in msgs if m.output == "summary"]
    assert len(got) == 1, [m.subtopic for m in msgs]
    return got[0]


def seed_store(content, data_dir: Path, line_id: str, call_id: str, **kw) -> dict:
    store = CallStore(data_dir / "calls")
    try:
        msgs = text_call(content, line_id, call_id, store=store, **kw)
    finally:
        store.close()
    return summary_of(msgs)


# ================================================================= the line at call end

def test_call_end_publishes_the_filled_summary_and_never_the_unredacted_text(content):
    msgs = text_call(content, "7", "c-live-1")
    s = summary_of(msgs)
    assert s["call_type"] == "claim_report"
    t = s["ticket"]
    f = t["fields"]
    # the agent files the ticket: personal values in full by default ...
    assert f["policy_number"]["value"] == "HM44107" and f["callback_number"]["value"] == "4155554111"
    assert f["incident_date"]["value"] == "2026-03-09"        # "yesterday", from the call's date
    assert f["claim_type"]["value"] == "auto" and f["requested_action"]["value"] == "file_claim"
    # ... but never in evidence, the summary, a transcript or anything else published
    for m in msgs:
        if m.output == "summary":
            body = json.dumps({k: v for k, v in m.payload.items() if k != "ticket"})
            body += json.dumps([x.get("evidence") for x in t["fields"].values()])
        else:
            body = json.dumps(m.payload) if isinstance(m.payload, dict) else m.payload
        for secret in ("4 4 1 0 7", "44107", "4,111", "4111", "one one one"):
            assert secret not in body, (m.subtopic, secret, body[:300])
    # the desk's correction form: type, title, options, required, personal
    form = t["form"]
    assert form["claim_type"]["type"] == "enum" and {o["value"] for o in form["claim_type"]["options"]} \
        == {"auto", "home", "travel", "health", "other"}
    assert form["policy_number"]["personal"] is True and form["policy_number"]["required"] is True
    assert form["follow_up"].get("promise") is True
    # the scorecard with its prosody figures from the line's VAD, the path's steps with times
    card = s["scorecard"]
    assert card["form"] == "insurance-qa" and 0 <= card["score"] <= 100
    fig = card["figures"]
    assert fig["talk_s"]["agent"] > 10 and fig["talk_s"]["customer"] > 5 and fig["talk_listen_ratio"] > 0
    assert card["steps"] and all(("t" in st and "done" in st) for st in card["steps"])
    assert any(st["done"] and st["t"] is not None for st in card["steps"])
    assert s["ivr"] == {"intent": "claim", "lang": "en"}
    # the summary reads like a person wrote it, three to six lines
    assert 3 <= len(s["summary"].splitlines()) <= 6


def test_mask_personal_masks_the_published_ticket(content):
    s = summary_of(text_call(content, "7", "c-live-2", mask=True))
    f = s["ticket"]["fields"]
    assert f["policy_number"]["value"] == "HM*****" and f["policy_number"].get("masked") is True
    assert f["callback_number"]["value"] == "*" * 10
    assert f["claim_type"]["value"] == "auto"      # not personal: as extracted


def test_after_call_failure_keeps_the_assist_summary(content, monkeypatch):
    """A bug in the after-call logic must not lose the call's summary (logged, counted)."""
    def boom(self, record, **kw):
        raise RuntimeError("boom")
    monkeypatch.setattr(type(content.aftercall), "finish", boom)
    s = summary_of(text_call(content, "7", "c-live-3"))
    assert s["ticket"] is None and s["scorecard"]["flow"] == "inbound-service-en"


def test_record_text_replaces_the_live_finals_it_covers():
    from callcue.daemon.aftercall.record import Utterance
    from callcue.daemon.line import with_record
    said = [Utterance("customer", "policy is H M four four", 1.0, 3.0), Utterance("agent", "thanks", 3.5, 4.0),
            Utterance("customer", "one oh seven", 3.2, 4.5)]
    rec = [Utterance("customer", "the policy is H M 4 4 1 0 7", 0.9, 4.6)]
    got = with_record(said, rec)
    assert [u.text for u in got] == ["the policy is H M 4 4 1 0 7", "thanks"]
    assert with_record(said, None) is said


# ================================================================= store, corrections, timeline

def test_store_keeps_the_after_call_results_and_corrections_side_by_side(tmp_path, content):
    s = seed_store(content, tmp_path, "7", "c-store-1")
    store = CallStore(tmp_path / "calls")
    try:
        rec = store.get_call("c-store-1")
        assert rec["call_type"] == "claim_report" and rec["ticket"] == s["ticket"] and rec["summary"] == s["summary"]
        assert rec["scorecard"]["score"] == s["scorecard"]["score"]
        fix = store.correct_ticket("c-store-1", "claim_type", "home", "alice")
        assert fix["original"]["value"] == "auto" and fix["by"] == "alice"
        store.correct_ticket("c-store-1", "claim_type", "other", "bob")
        rec = store.get_call("c-store-1")
        assert rec["ticket"]["fields"]["claim_type"]["value"] == "auto"       # the extraction stays as it was
        assert [(c["value"], c["by"], c["original"]["value"]) for c in rec["corrections"]] == \
            [("home", "alice", "auto"), ("other", "bob", "auto")]
        assert [e["payload"]["value"] for e in rec["events"] if e["kind"] == "ticket_update"] == ["home", "other"]
        with pytest.raises(Exception, match="correct_ticket"):
            store.add_event("c-store-1", "ticket_update", {"x": 1})          # only correct_ticket writes those
        assert [r["call_id"] for r in store.find_calls(agent="Priya Shah")] == ["c-store-1"]
        assert store.find_calls(agent="Nobody") == [] and store.find_calls(line="8") == []
        assert store.find_calls(since="2999-01-01T00:00:00+00:00") == []
        store.flush()
        # the files, read without the lock (callcue calls), say the same
        reader = StoreReader(tmp_path / "calls")
        assert [r["call_id"] for r in reader.find_calls(line="7")] == ["c-store-1"]
        assert reader.get_call("c-store-1")["corrections"] == rec["corrections"]
    finally:
        store.close()


def test_corrections_are_checked_against_the_template(content):
    tpl = content.pack.tickets.get("claim_report")
    assert check_update(tpl, "claim_type", "home") == ("home", None)
    assert check_update(tpl, "policy_number", "hm-44 107") == ("HM44107", None)
    assert check_update(tpl, "incident_date", "2026-03-08") == ("2026-03-08", None)
    assert check_update(tpl, "callback_number", "(415) 555-4111") == ("4155554111", None)
    assert check_update(tpl, "policy_number", None) == (None, None)          # the call does not state it
    assert check_update(tpl, "follow_up", "adjuster calls back", "2026-03-12") == ("adjuster calls back", "2026-03-12")
    for field, value, due, why in [("claim_type", "boat", None, "not one of"), ("nope", "x", None, "no field"),
                                   ("incident_date", "yesterday", None, "not a date"),
                                   ("incident_date", "2026-02-30", None, "calendar"),
                                   ("callback_number", "call me", None, "not a phone"),
                                   ("claim_type", "auto", "2026-03-12", "only a promise"),
                                   ("follow_up", "x", "soon", "not a date")]:
        with pytest.raises(CorrectionError, match=why):
            check_update(tpl, field, value, due)
    info = {"type": "enum", "options": [{"value": "auto"}, {"value": "home"}]}
    assert check_form_value("claim_type", info, "home") == "home"
    with pytest.raises(CorrectionError):
        check_form_value("claim_type", info, "car")


def test_ticket_update_is_an_agent_op_with_a_strict_payload():
    body = {"op": "ticket_update", "call_id": "c1", "field": "claim_type", "value": "home", "by": "alice"}
    assert parse_command("7", json.dumps(body).encode(), "agent").value == "home"
    with pytest.raises(RoleError):
        parse_command("7", json.dumps(body).encode(), "cti")
    for bad in ({**body, "field": "Claim Type"}, {**body, "extra": 1}, {k: v for k, v in body.items() if k != "by"},
                {**body, "value": {"x": 1}}):
        with pytest.raises(Exception):
            parse_command("7", json.dumps(bad).encode(), "agent")
    assert "ticket_update" in contract.ROLE_OPS["agent"] and "ticket_update" not in contract.ROLE_OPS["cti"]
    assert "ticket_update" not in contract.LEGACY_CMD_OPS


def test_queries_and_their_response_topics():
    assert parse_query(b'{"op": "calls", "line": "7", "since": "2026-03-10T00:00:00+00:00"}').line == "7"
    assert parse_query(b'{"op": "call", "call_id": "c1"}').call_id == "c1"
    for bad in (b"[]", b'{"op": "drop"}', b'{"op": "calls", "limit": 100000}', b'{"op": "call"}', b"x" * 5000):
        with pytest.raises(QueryError):
            parse_query(bad)
    root = contract.root("s", "f")
    assert reply_allowed(root, "b1", f"{root}/box/b1/reply/abc123")
    for topic in (None, "", f"{root}/box/b1/reply/", f"{root}/box/b1/reply/a/b", f"{root}/box/b2/reply/x",
                  f"{root}/line/7/alert", f"{root}/box/b1/reply/+", "other/box/b1/reply/x"):
        assert not reply_allowed(root, "b1", topic), topic


def test_timeline_masks_personal_values_and_shows_corrections(tmp_path, content):
    seed_store(content, tmp_path, "7", "c-tl-1")
    store = CallStore(tmp_path / "calls")
    try:
        store.correct_ticket("c-tl-1", "policy_number", "HM44170", "alice")
        rec = store.get_call("c-tl-1")
    finally:
        store.close()
    tl = timeline(rec, redact, "*")
    fields = {f["name"]: f for f in tl["ticket"]["fields"]}
    assert fields["policy_number"]["value"] == "HM*****" and fields["policy_number"]["extracted"] == "HM*****"
    assert fields["policy_number"]["corrected"]["by"] == "alice"
    assert tl["corrections"][0]["value"] == "HM*****"
    assert fields["claim_type"]["value"] == "auto"
    kinds = {i["kind"] for i in tl["items"]}
    assert {"turn", "step"} <= kinds
    text = render_text(tl, width=160)
    for part in ("IVR context", "intent=claim", "Timeline", "Flow steps", "Ticket: Claim report", "Scorecard",
                 "Figures", "corrected by alice", "rear ended yesterday"):
        assert part in text, part
    for secret in ("44107", "44170", "4111"):
        assert secret not in text


# ================================================================= through the broker

def _daemon_cfg(tmp_path: Path, site: str, host: str, port: int, line_id: str = "7"):
    quiet = write_wav(tmp_path / "quiet.wav", call([], 2.0))
    lines = [LineConfig(id=line_id, agent="Priya Shah", source=SourceConfig(wav=quiet, pace="realtime", loop=True))]
    return default_config(site=site, floor="f1", box="b1", data_dir=tmp_path / "data", lines=lines,
                          broker=BrokerConfig(url=f"mqtt://{host}:{port}"))


def screen_text(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def until(pilot, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout} s; screen:\n{screen_text(pilot.app)}")
        await pilot.pause(0.05)


@pytest.fixture
def site(mqtt_broker):
    site = f"t{uuid.uuid4().hex[:8]}"
    yield site
    clear_retained(*mqtt_broker, f"callcue/v1/{site}/#")


def test_desk_correction_goes_through_the_broker_into_the_store(tmp_path, mqtt_broker, collector, site, content):
    host, port = mqtt_broker
    cfg = _daemon_cfg(tmp_path, site, host, port)
    summary = seed_store(content, cfg.data_dir, "7", "c-desk-1")
    root = contract.root(site, "f1")
    cmds = collector(host, port, f"{root}/line/7/cmd/agent")
    daemon = Daemon(cfg)
    reader = StoreReader(cfg.data_dir / "calls")

    def corrections():
        return (reader.get_call("c-desk-1") or {}).get("corrections") or []

    async def scenario():
        app = AgentApp(BrokerConfig(url=f"mqtt://{host}:{port}", keepalive_s=10), site, "f1", "7", user="alice")
        async with app.run_test(size=(100, 30)) as pilot:
            daemon.start()
            await until(pilot, lambda: app.client.connected, 10, "desk connected")
            pub = cmds.client
            for msg in (contract.line_state("7", "Priya Shah", None, "idle", contract.now_iso()),
                        contract.Message("line/7/summary", summary)):
                pub.publish(f"{root}/{msg.subtopic}", msg.encode(), qos=1).wait_for_publish(5)
            await until(pilot, lambda: "Ticket: Claim report" in screen_text(app), 10, "ticket ready on the desk")
            await pilot.press("e")
            await until(pilot, lambda: isinstance(app.screen, TicketScreen), 5, "ticket screen")
            assert "HM44107" in screen_text(app) and "auto" in screen_text(app)
            # claim type: an option list; the agent picks "home"
            names = list(summary["ticket"]["fields"])
            for _ in range(names.index("claim_type")):
                await pilot.press("down")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, EditScreen), 5, "option list")
            await pilot.press("down", "enter")          # auto -> home
            await until(pilot, lambda: isinstance(app.screen, TicketScreen) and "corrected" in screen_text(app),
                        5, "corrected mark")
            got = cmds.wait_for(lambda ms: any(b"ticket_update" in m.payload for m in ms), 5)
            sent = [json.loads(m.payload) for m in got if b"ticket_update" in m.payload]
            assert sent == [{"op": "ticket_update", "call_id": "c-desk-1", "field": "claim_type", "value": "home",
                             "by": "alice"}]
            # the box took it: stored with who and the original extraction, read back from the files
            wait_until(lambda: corrections(), 10, "correction in the store", detail=corrections)
            # a value the template refuses is rejected and counted, never stored
            before = daemon.rejected_commands
            bad = {"op": "ticket_update", "call_id": "c-desk-1", "field": "claim_type", "value": "boat", "by": "x"}
            pub.publish(f"{root}/line/7/cmd/agent", json.dumps(bad), qos=1).wait_for_publish(5)
            wait_until(lambda: daemon.rejected_commands > before, 10, "bad value rejected")
            # a typed value: the promise, with a q in it (typed, not a quit); its due date kept
            await pilot.press("home")
            for _ in range(names.index("follow_up")):
                await pilot.press("down")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, EditScreen), 5, "text box")
            app.screen.query_one("#value").value = ""
            await pilot.press(*"adjuster calls back quickly")
            await pilot.press("enter")
            wait_until(lambda: len(corrections()) == 2, 10, "second correction stored", detail=corrections)
        return daemon.records.stats()

    try:
        stats = asyncio.run(scenario())
    finally:
        daemon.stop()
    fixes = StoreReader(cfg.data_dir / "calls").get_call("c-desk-1")["corrections"]
    assert [(c["field"], c["value"], c["by"], c["original"]["value"]) for c in fixes] == \
        [("claim_type", "home", "alice", "auto"), ("follow_up", "adjuster calls back quickly", "alice",
                                                     summary["ticket"]["fields"]["follow_up"]["value"])]
    assert fixes[1]["due"] == summary["ticket"]["fields"]["follow_up"]["due"] == "2026-03-12"
    assert stats["corrections"] == 2 and stats["rejected"] == 1


def test_tui_opens_a_past_call_from_the_box(tmp_path, mqtt_broker, site, content):
    host, port = mqtt_broker
    cfg = _daemon_cfg(tmp_path, site, host, port)
    seed_store(content, cfg.data_dir, "7", "c-past-1")
    daemon = Daemon(cfg)

    async def scenario():
        app = SupervisorApp(BrokerConfig(url=f"mqtt://{host}:{port}", keepalive_s=10),
                            floor_filters(site, "f1", False), user="sue")
        async with app.run_test(size=(120, 40)) as pilot:
            daemon.start()
            # the board knows which box serves line 7 from the box's retained health
            def served() -> bool:
                with app.live.lock:
                    info = app.live.model.boxes.get((site, "f1", "b1"))
                    return info is not None and "7" in info["lines"]
            await until(pilot, served, 20, "line 7 served by box b1 (its retained health)")
            await pilot.press("h")
            await until(pilot, lambda: isinstance(app.screen, PastCallsScreen), 5, "past calls")
            await until(pilot, lambda: "c-past-1" in screen_text(app), 15, "the stored call listed")
            assert "claim_report" in screen_text(app)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TimelineScreen), 15, "timeline")
            text = screen_text(app)
            for part in ("Call c-past-1", "IVR context", "Timeline", "rear ended"):
                assert part in text, part
            assert "44107" not in text and "4111" not in text          # redacted, personal values masked
            tl = app.screen.tl
            assert tl["ticket"]["template"] == "claim_report" and tl["scorecard"]["items"]
            assert {f["name"]: f["value"] for f in tl["ticket"]["fields"]}["policy_number"] == "HM*****"
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, PastCallsScreen), 5, "back to the list")
            await pilot.press("g")              # the agent's calls (every box of the floor)
            await until(pilot, lambda: "Priya Shah" in screen_text(app) and "c-past-1" in screen_text(app), 15,
                        "the agent's calls")

    try:
        asyncio.run(scenario())
    finally:
        daemon.stop()
    assert daemon.records.stats()["queries"] >= 3


# ================================================================= who may ask: the ACL

def test_only_supervisors_may_ask_and_agents_only_correct_their_own_line(tmp_path, content):
    port = free_port()
    base = _daemon_cfg(tmp_path, "s1", "127.0.0.1", port)
    lines = base.lines + [base.lines[0].model_copy(update={"id": "8"})]
    cfg = base.model_copy(update={"broker": None, "lines": lines,
                                  "embedded_broker": EmbeddedBrokerConfig(bind="127.0.0.1", port=port,
                                                                          acl_dir=tmp_path / "acl")})
    write_acl_dir(cfg, tmp_path / "acl")
    creds = yaml.safe_load((tmp_path / "acl" / "credentials.yaml").read_text())
    seed_store(content, cfg.data_dir, "7", "c-acl-1")
    daemon = Daemon(cfg)
    daemon.start()
    clients = []
    try:
        def client(user, role):
            c = FeedClient(BrokerConfig(url=f"mqtt://127.0.0.1:{port}", username=user, password=creds[user],
                                        keepalive_s=10),
                           [f"{contract.root('s1', 'f1')}/#"] if role == "supervisor"
                           else [f"{contract.root('s1', 'f1')}/line/{user.split('-')[1]}/#"],
                           lambda t, p: None, client_prefix=user, cmd_role=role)
            c.start()
            clients.append(c)
            wait_until(lambda: c.connected, 20, f"{user} connected", detail=lambda: c.status_detail)
            return c

        sup = client("supervisor-s1-f1", "supervisor")
        ag7 = client("agent-7", "agent")
        ag8 = client("agent-8", "agent")
        answers: dict[str, list] = {"sup": [], "ag7": []}
        assert sup.request("s1", "f1", "b1", {"op": "call", "call_id": "c-acl-1"}, answers["sup"].append)
        wait_until(lambda: answers["sup"], 15, "the supervisor's answer")
        assert answers["sup"][0]["ok"] and answers["sup"][0]["timeline"]["call_id"] == "c-acl-1"
        # an agent's request is refused by the broker (PUBACK not authorised) and never reaches the box
        asked = daemon.records.stats()["queries"]
        ag7.request("s1", "f1", "b1", {"op": "calls"}, answers["ag7"].append, timeout=1.0)
        wait_until(lambda: ag7.refused >= 1, 10, "agent's query refused by the broker")
        assert daemon.records.stats()["queries"] == asked
        # agents correct tickets only on their own line: another line's topic is closed to them,
        # and a call of another line sent on their own topic is rejected by the box
        body = {"op": "ticket_update", "call_id": "c-acl-1", "field": "claim_type", "value": "home", "by": "x"}
        assert ag8.publish_cmd("s1", "f1", "7", body)
        wait_until(lambda: ag8.refused >= 1, 10, "agent-8 refused on line 7's topic")
        before = daemon.rejected_commands
        assert ag8.publish_cmd("s1", "f1", "8", body)
        wait_until(lambda: daemon.rejected_commands > before, 10, "call of another line rejected")
        assert ag7.publish_cmd("s1", "f1", "7", {**body, "by": "agent7"})
        wait_until(lambda: daemon.records.stats()["corrections"] == 1, 10, "own line's correction taken")
    finally:
        for c in clients:
            c.stop()
        daemon.stop()
    fixes = StoreReader(cfg.data_dir / "calls").get_call("c-acl-1")["corrections"]
    assert [(c["by"], c["value"]) for c in fixes] == [("agent7", "home")]


def test_calls_list_and_show_read_the_store_while_it_is_open(tmp_path, content, capsys):
    """`callcue calls` reads the files of a store another process owns (the daemon's)."""
    from datetime import datetime, timezone

    from callcue.daemon.cli import main
    from callcue.daemon.commands.calls import parse_since
    seed_store(content, tmp_path, "7", "c-cli-1")
    store = CallStore(tmp_path / "calls")          # holds the lock, as the running daemon does
    try:
        store.correct_ticket("c-cli-1", "claim_type", "home", "alice")
        store.flush()
        assert main(["calls", "list", "--data-dir", str(tmp_path), "--agent", "Priya Shah", "--since", "1d",
                     "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [(r["call_id"], r["call_type"], r["corrections"]) for r in rows] == [("c-cli-1", "claim_report", 1)]
        assert main(["calls", "list", "--data-dir", str(tmp_path), "--line", "8", "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == []
        assert main(["calls", "show", "c-cli-1", "--data-dir", str(tmp_path), "--width", "150"]) == 0
        out = capsys.readouterr().out
        for part in ("Call c-cli-1", "IVR context", "Timeline", "Ticket: Claim report", "corrected by alice",
                     "Scorecard (insurance-qa)"):
            assert part in out, part
        assert "44107" not in out
        assert main(["calls", "show", "nope", "--data-dir", str(tmp_path)]) == 1
        assert main(["calls", "list", "--data-dir", str(tmp_path), "--since", "last week"]) == 2
    finally:
        store.close()
    now = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
    assert parse_since("2h", now) == "2026-03-10T10:00:00+00:00"
    assert parse_since("2026-03-09T08:00:00+00:00", now) == "2026-03-09T08:00:00+00:00"
