"""Synthetic calls: real espeak-ng + sox rendering, truth labels, generator, scorer, CLI."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from callcue.daemon.cli import main
from callcue.daemon.eval.score_alerts import (Event, derive_events, format_report, load_alerts, match_events,
                                              score_paths)
from callcue.daemon.eval.synth.generate import estimate_seconds, generate_call
from callcue.daemon.eval.synth.render import RenderError, read_wav, render_call, write_call
from callcue.daemon.eval.synth.script import CallScript, load_script
from callcue.daemon.yamlfile import ConfigError

SCRIPT = """\
language: en
tail: 0.8
turns:
  - {speaker: agent, gap: 0.4, text: "Thank you for calling Harbor Mutual, how can I help you?"}
  - {speaker: customer, gap: 0.5, text: "Hi, I am calling about my car claim from last week."}
  # dead air, then the customer talks over the agent for 1.5 s
  - {speaker: agent, gap: 5.5, text: "Thanks for waiting, I can see the claim was approved yesterday."}
  - {speaker: customer, gap: -1.5, style: agitated, text: "Finally, nobody told me anything about it!"}
"""


def rms_dbfs(x: np.ndarray) -> float:
    x = x.astype(np.float64) / 32768
    return 10 * np.log10(np.mean(x ** 2) + 1e-20)


@pytest.fixture(scope="module")
def script_path(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("synth") / "call.yaml"
    p.write_text(SCRIPT, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def rendered(script_path):
    out = {}
    for rate in (8000, 16000):
        wav = script_path.with_name(f"call-{rate}.wav")
        call = render_call(load_script(script_path), rate, seed=3)
        write_call(call, wav)
        out[rate] = (wav, json.loads(wav.with_name(f"call-{rate}.labels.json").read_text()))
    return out


@pytest.mark.parametrize("rate", [8000, 16000])
def test_channels_noise_and_real_boundaries(rendered, rate):
    wav, labels = rendered[rate]
    audio, sr = read_wav(wav)
    assert sr == rate and audio.shape[1] == 2 and labels["sample_rate"] == rate
    assert labels["audio"] == wav.name
    assert labels["duration"] == pytest.approx(len(audio) / rate, abs=1e-3)
    turns = labels["turns"]
    assert [t["speaker"] for t in turns] == ["agent", "customer", "agent", "customer"]
    for t in turns:
        s, e = round(t["t_start"] * rate), round(t["t_end"] * rate)
        own, other = (0, 1) if t["speaker"] == "agent" else (1, 0)
        assert rms_dbfs(audio[s:e, own]) > -35, t
        # the other channel is only noise, unless that party is talking over this turn
        if not any(u is not t and u["speaker"] != t["speaker"] and u["t_start"] < t["t_end"]
                   and t["t_start"] < u["t_end"] for u in turns):
            assert rms_dbfs(audio[s:e, other]) < -55, t
        # boundaries are where speech really starts and ends: loud inside, floor just outside
        k = rate // 50
        assert np.abs(audio[s:s + k, own]).max() > 100
        assert np.abs(audio[e - k:e, own]).max() > 100
        if t["t_start"] > 0.1:
            assert rms_dbfs(audio[s - 2 * k:s - 5, own]) < -55
    # silence is a low noise floor, not digital zero
    gap = audio[round((turns[1]["t_end"] + 1) * rate):round((turns[2]["t_start"] - 1) * rate)]
    for ch in (0, 1):
        assert -63 < rms_dbfs(gap[:, ch]) < -57
        assert np.count_nonzero(gap[:, ch]) > 0.5 * len(gap)


def test_telephone_band_at_8k(rendered):
    def share(rate, lo_hz, hi_hz):
        audio, _ = read_wav(rendered[rate][0])
        first = rendered[rate][1]["turns"][0]
        x = audio[round(first["t_start"] * rate):round(first["t_end"] * rate), 0].astype(np.float64)
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / rate)
        return spec[(f >= lo_hz) & (f < hi_hz)].sum() / spec.sum()
    # espeak's male voice has ~12 % of its energy below 300 Hz; the telephone band removes it
    assert share(8000, 0, 300) < 0.02 < 0.05 < share(16000, 0, 300)
    assert share(8000, 3500, 4000) < 0.002 < 0.005 < share(16000, 3500, 8000)


def test_labels_follow_the_timeline(rendered):
    for rate, (_, labels) in rendered.items():
        t = labels["turns"]
        assert t[1]["t_start"] - t[0]["t_end"] == pytest.approx(0.5, abs=2 / rate)
        assert t[2]["t_start"] - t[1]["t_end"] == pytest.approx(5.5, abs=2 / rate)
        assert t[3]["t_start"] - t[2]["t_end"] == pytest.approx(-1.5, abs=2 / rate)
        assert t[3]["espeak"]["pitch"] == 85 and t[3]["espeak"]["amplitude"] == 180
        ev = {e["kind"]: e for e in labels["events"]}
        assert set(ev) == {"long_silence", "talk_over", "agitation"}
        assert ev["long_silence"] == {"kind": "long_silence", "speaker": None,
                                      "t_start": t[1]["t_end"], "t_end": t[2]["t_start"]}
        assert ev["talk_over"] == {"kind": "talk_over", "speaker": "customer",
                                   "t_start": t[3]["t_start"], "t_end": t[2]["t_end"]}
        assert ev["agitation"] == {"kind": "agitation", "speaker": "customer",
                                   "t_start": t[3]["t_start"], "t_end": t[3]["t_end"]}


def test_render_is_deterministic_and_mandarin_speaks(tmp_path):
    script = CallScript.model_validate({"language": "zh", "turns": [
        {"speaker": "agent", "text": "您好，欢迎致电安和保险。"},
        {"speaker": "customer", "text": "你好，我想查一下理赔进度。", "gap": -0.3}]})
    a = render_call(script, 8000, seed=1)
    b = render_call(script, 8000, seed=1)
    assert np.array_equal(a.audio, b.audio) and a.turns == b.turns
    assert a.turns[0]["espeak"]["voice"] == "cmn-latn-pinyin"
    assert a.turns[1]["espeak"]["voice"] == "cmn-latn-pinyin+f3"
    # 12 hanzi at espeak's Mandarin rate is ~2-4 s; reading pinyin digits as English would be far longer
    assert 1.5 < a.turns[0]["t_end"] - a.turns[0]["t_start"] < 4.5
    assert a.events == []   # a 0.3 s overlap is not a talk-over


def _hf_share_db(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / rate)
    return float(10 * np.log10(spec[(f >= 1000) & (f < 3400)].sum() / spec[(f >= 300) & (f < 1000)].sum()))


@pytest.mark.parametrize("rate", [8000, 16000])
def test_vocal_effort_pitch_range_and_channel_gain_render(rate):
    from callcue.daemon.eval.synth.render import synth_speech
    from callcue.daemon.eval.synth.script import ResolvedParams
    text = "I have been waiting three weeks and nobody ever calls me back."
    base = ResolvedParams(voice="en-us", speed=170, pitch=50, amplitude=100)
    plain = synth_speech(text, base, rate)
    strained = synth_speech(text, base.model_copy(update={"effort": 8.0}), rate)
    assert 2.0 < _hf_share_db(strained, rate) - _hf_share_db(plain, rate) < 8.0   # more energy above 1 kHz
    assert abs(len(strained) - len(plain)) < rate // 100                          # same speech, same timing
    # a wider pitch range (SSML) spreads the pitch track
    from callcue.daemon.config import DetectorConfig
    from callcue.daemon.prosody.params import F_F0
    from callcue.daemon.prosody.session import Detectors

    def spread(x):
        a = np.round(np.stack([x, x], axis=1) * 20000).astype(np.int16)
        s = Detectors(DetectorConfig(), rate).session()
        s.process(a[:, 0], a[:, 1])
        f0 = s.last_features[0, :, F_F0]
        st = 12 * np.log2(f0[f0 > 0])
        return np.percentile(st, 90) - np.percentile(st, 10)
    narrow = synth_speech(text, base.model_copy(update={"range": 20}), rate)
    wide = synth_speech(text, base.model_copy(update={"range": 90}), rate)
    assert spread(wide) > spread(narrow) + 0.5
    # a channel set hotter: that party's voice and line noise, nothing else
    turns = [{"speaker": "agent", "text": "Thank you for calling, how can I help?"},
             {"speaker": "customer", "text": "Hi, I am calling about my claim."}]
    flat = render_call(CallScript.model_validate({"language": "en", "turns": turns}), rate, seed=2)
    hot = render_call(CallScript.model_validate({"language": "en", "turns": turns,
                                                 "voices": {"customer": {"gain_db": 6.0}}}), rate, seed=2)
    assert np.array_equal(hot.audio[:, 0], flat.audio[:, 0]) and hot.turns == flat.turns
    assert rms_dbfs(hot.audio[:, 1]) - rms_dbfs(flat.audio[:, 1]) == pytest.approx(6.0, abs=0.1)


def test_bad_scripts_are_reported(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("language: en\nturns:\n  - speaker: agent\n    text: hi\n    gapp: 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:5: turns.0.gapp: unknown field"):
        load_script(p)
    p.write_text("language: en\nturns:\n  - {speaker: agent, text: hi, gap: 1, at: 2}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:3: .*either gap or at"):
        load_script(p)
    collide = CallScript.model_validate({"language": "en", "turns": [
        {"speaker": "agent", "text": "Let me check that for you."},
        {"speaker": "agent", "text": "One moment please.", "gap": -0.5}]})
    with pytest.raises(RenderError, match=r"turn 2 \(agent.*collides with turn 1"):
        render_call(collide, 8000)
    bad_voice = CallScript.model_validate({"language": "en", "turns": [
        {"speaker": "agent", "text": "Hello.", "espeak": {"voice": "en-us+nosuch"}}]})
    with pytest.raises(RenderError, match="unknown variant 'nosuch'"):
        render_call(bad_voice, 8000)


def turn(sp, s, e, style="normal"):
    return {"speaker": sp, "style": style, "t_start": s, "t_end": e}


def test_derive_events_thresholds_and_interrupter():
    ev = derive_events([turn("agent", 0, 3), turn("customer", 7.99, 10), turn("agent", 9.0, 12),
                        turn("customer", 17.0, 20), turn("agent", 19.01, 22, "fast"),
                        turn("customer", 27.0, 30, "fast"), turn("agent", 28.0, 29.0, "agitated")])
    kinds = sorted((e.kind, e.speaker, e.t_start, e.t_end) for e in ev)
    assert kinds == sorted([
        ("talk_over", "agent", 9.0, 10.0),            # exactly 1.0 s: counts
        ("long_silence", None, 12.0, 17.0),           # exactly 5.0 s: counts; 4.99 s (3 -> 7.99) does not
        ("fast_speech", "agent", 19.01, 22.0),        # 0.99 s overlap 19.01-20: no talk_over
        ("long_silence", None, 22.0, 27.0),
        ("agitation", "agent", 28.0, 29.0),
        ("talk_over", "agent", 28.0, 29.0),           # the agent started second
    ])
    # customer fast turns are not fast_speech (the check is on agents); thresholds are arguments
    ev = derive_events([turn("agent", 0, 3), turn("customer", 6, 9)], silence_s=2.5)
    assert [(e.kind, e.t_start, e.t_end) for e in ev] == [("long_silence", 3, 6)]


def plan_of(script: CallScript) -> dict[str, int]:
    planned = dict((k, int(n)) for n, k in re.findall(r"(\d) (\w+)", script.title.split("planned")[1].split(";")[0]))
    # every agitated turn is an agitation event: the planned ones and the customer's mood (angry_*)
    return {"long_silence": planned["silence"], "talk_over": planned["talk_over"],
            "fast_speech": planned["fast"], "agitation": sum(t.style == "agitated" for t in script.turns)}


def mood_of(script: CallScript) -> str:
    return script.title.split("; mood ")[1].split(";")[0]


def test_generator_is_deterministic_and_plans_sensible_calls():
    for lang in ("en", "zh"):
        assert generate_call(11, lang) == generate_call(11, lang)
        assert generate_call(11, lang) != generate_call(12, lang)
    counts = {k: 0 for k in ("long_silence", "talk_over", "fast_speech", "agitation")}
    moods = {"calm_open": 0, "angry_open": 0, "angry_long": 0, "angry_end": 0}
    gains = 0
    for seed in range(30):
        for lang in ("en", "zh"):
            sc = generate_call(seed, lang)
            for k, n in plan_of(sc).items():
                assert 0 <= n <= (2 if k != "agitation" else 12)
                counts[k] += n
            voices = {t.speaker: t.espeak.voice for t in sc.turns}
            assert voices["agent"] != voices["customer"]
            mood = mood_of(sc)
            moods[mood] += 1
            normal = {"agent": 0.0, "customer": 0.0}
            first = {}
            for t in sc.turns:
                first.setdefault(t.speaker, t)
                est = estimate_seconds(t.text, lang, t.espeak.speed)
                base = sc.voices[t.speaker]
                if t.style == "normal":
                    normal[t.speaker] += est
                    assert 140 <= t.espeak.speed <= (265 if t.speaker == "customer" else 215)
                    assert t.espeak.effort <= 2.5
                else:
                    assert est >= 2.8, t
                if t.style == "agitated":
                    if t.speaker == "agent" or mood == "calm_open":
                        assert normal[t.speaker] >= 6.5, (seed, lang)
                    # several cues at once: pitch, loudness, range and vocal effort all go up
                    assert 25 <= t.espeak.pitch - base.pitch <= 45 or t.espeak.pitch == 99
                    assert 160 <= t.espeak.amplitude <= 200
                    assert t.espeak.range >= base.range + 20 or t.espeak.range == 99
                    assert t.espeak.effort >= base.effort + 6.0 or t.espeak.effort == 12.0
                if t.style == "fast":
                    assert t.speaker == "agent" and t.espeak.speed >= 300
            if mood in ("angry_open", "angry_long"):   # agitated from the first word, for several turns
                assert first["customer"].style == "agitated"
                assert plan_of(sc)["agitation"] >= (3 if mood == "angry_long" else 2), (seed, lang)
            elif mood == "angry_end":
                cust = [t for t in sc.turns if t.speaker == "customer"]
                assert cust[-1].style == "agitated" or cust[-2].style == "agitated"
                assert cust[0].style == "normal"
            gains += sum(v.gain_db != 0 for v in sc.voices.values())
    assert all(n > 10 for n in counts.values()), counts   # every kind occurs across the corpus
    assert all(n >= 5 for n in moods.values()), moods      # and every mood of customer
    assert gains >= 5                                      # lines whose channels differ in gain


def test_calm_voice_variants_differ_from_agitation_in_several_cues():
    """A calm loud, high or fast voice changes one cue; agitation changes them all."""
    seen = set()
    for seed in range(40):
        for lang in ("en", "zh"):
            sc = generate_call(seed, lang)
            voices = dict(re.findall(r"(agent|customer) (plain|loud_high|loud|high|fast)", sc.title.split("voices")[1]))
            for t in sc.turns:
                if t.style != "normal":
                    continue
                variant = voices[t.speaker]
                seen.add(variant)
                p = t.espeak
                if "loud" in variant:
                    assert p.amplitude >= 150 and p.effort <= 2.5
                else:
                    assert p.amplitude <= 110
                if "high" in variant:
                    assert p.pitch >= 66 and p.range <= 50
                else:
                    assert p.pitch <= 59
                if variant == "fast":
                    assert t.speaker == "customer" and p.speed >= 203
                assert p.range <= 60 and p.effort <= 2.5    # never the range and effort of agitation
    assert seen == {"plain", "loud", "high", "loud_high", "fast"}


@pytest.mark.parametrize("seed,lang", [(3, "en"), (4, "zh")])
def test_generated_call_renders_to_its_plan(seed, lang):
    sc = generate_call(seed, lang)
    call = render_call(sc, 8000, seed=seed)
    assert 60 <= call.duration <= 120
    got = {k: sum(e.kind == k for e in call.events) for k in plan_of(sc)}
    assert got == plan_of(sc)
    normal = {"agent": 0.0, "customer": 0.0}
    for t in call.turns:
        length = t["t_end"] - t["t_start"]
        if t["style"] == "normal":
            normal[t["speaker"]] += length
        else:
            assert length >= 2.5
        if t["style"] == "agitated" and mood_of(sc) == "calm_open":
            assert normal[t["speaker"]] >= 6.0
    for e in call.events:
        if e.kind == "talk_over":
            assert 1.3 - 0.01 <= e.t_end - e.t_start <= 3.0 + 0.01
        if e.kind == "long_silence":
            assert 5.5 - 0.01 <= e.t_end - e.t_start <= 10.0 + 0.01


def test_matching_rules():
    truth = [Event("talk_over", "customer", 10.0, 12.0), Event("talk_over", "customer", 11.5, 13.0),
             Event("long_silence", None, 30.0, 36.0)]
    det = [Event("talk_over", "customer", 11.2, 12.5),     # closer to the 11.5 truth: greedy takes that pair
           Event("talk_over", "agent", 10.0, 12.0),        # wrong speaker
           Event("long_silence", "agent", 30.5, 35.0)]     # speaker does not matter for silence
    pairs, misses, fas = match_events(truth, det, 1.0)
    assert pairs == [(truth[1], det[0]), (truth[2], det[2])]
    assert misses == [truth[0]] and fas == [det[1]]


def write_events(path: Path, alerts: list[dict], extra: list[dict] = ()) -> None:
    with path.open("w") as f:
        for a in alerts:
            f.write(json.dumps({"topic": "callcue/v1/s/f/line/l1/alert", "id": "x", **a}) + "\n")
        for x in extra:
            f.write(json.dumps(x) + "\n")


def test_scorer_on_hand_made_events(tmp_path):
    labels = {"audio": "c1.wav", "sample_rate": 8000, "language": "en", "duration": 60, "turns": [],
              "events": [{"kind": "long_silence", "speaker": None, "t_start": 10.0, "t_end": 16.0},
                         {"kind": "talk_over", "speaker": "customer", "t_start": 20.0, "t_end": 21.5},
                         {"kind": "fast_speech", "speaker": "agent", "t_start": 30.0, "t_end": 34.0},
                         {"kind": "agitation", "speaker": "customer", "t_start": 40.0, "t_end": 44.0}]}
    (tmp_path / "c1.labels.json").write_text(json.dumps(labels))
    ev = tmp_path / "events"
    ev.mkdir()
    write_events(ev / "c1.events.jsonl", [
        {"kind": "long_silence", "speaker": None, "t_start": 15.0, "t_end": 16.0},   # 5.0 s late: FP + FN
        {"kind": "talk_over", "speaker": "customer", "t_start": 20.99, "t_end": 21.0},  # inside tolerance
        {"kind": "fast_speech", "speaker": "agent", "t_start": 31.01, "t_end": 34.0},  # just outside: FP + FN
        {"kind": "agitation", "speaker": "agent", "t_start": 50.0, "t_end": 52.0},    # false alarm
        {"kind": "sensitive_word", "speaker": "agent", "t_start": 5.0, "t_end": 5.5},  # not scored here
    ], extra=[{"topic": "callcue/v1/s/f/line/l1/transcript", "text": "hello"}])       # not an alert
    r = score_paths(tmp_path, ev, tolerance=1.0)
    k = r.kinds
    assert (k["talk_over"].tp, k["talk_over"].fp, k["talk_over"].fn) == (1, 0, 0)
    assert k["talk_over"].mean_start_error == pytest.approx(0.99)
    assert k["talk_over"].mean_end_error == pytest.approx(0.5)
    assert (k["fast_speech"].tp, k["fast_speech"].fp, k["fast_speech"].fn) == (0, 1, 1)
    assert (k["long_silence"].tp, k["long_silence"].fp, k["long_silence"].fn) == (0, 1, 1)
    assert (k["agitation"].tp, k["agitation"].fp, k["agitation"].fn) == (0, 1, 1)
    assert k["talk_over"].precision == 1.0 and k["fast_speech"].recall == 0.0
    assert r.ignored == 1 and r.calls == 1
    assert sorted(e.kind for _, e in r.misses) == ["agitation", "fast_speech", "long_silence"]
    text = format_report(r)
    assert re.search(r"talk_over\s+1\s+0\s+0\s+1\.00\s+1\.00\s+0\.99s\s+0\.50s", text)
    assert "c1  fast_speech   agent        30.00 ..    34.00" in text
    # a wider tolerance turns the near miss into a hit
    assert score_paths(tmp_path / "c1.labels.json", ev / "c1.events.jsonl", tolerance=1.5).kinds["fast_speech"].tp == 1


def test_scorer_input_errors(tmp_path):
    (tmp_path / "c1.labels.json").write_text(json.dumps({"events": []}))
    ev = tmp_path / "ev"
    ev.mkdir()
    with pytest.raises(ConfigError, match=r"c1\.events\.jsonl"):
        score_paths(tmp_path, ev)
    (ev / "c1.events.jsonl").write_text('{"topic": "a/alert", "kind": "talk_over", "speaker": "agent", '
                                        '"t_start": 1, "t_end": 2}\n{"topic": "a/alert", "kind": "x"\n')
    with pytest.raises(ConfigError, match=r"c1\.events\.jsonl:2: not JSON"):
        load_alerts(ev / "c1.events.jsonl")
    (ev / "c1.events.jsonl").write_text('{"topic": "a/alert", "kind": "talk_over", "t_start": 1}\n')
    with pytest.raises(ConfigError, match=r"c1\.events\.jsonl:1: alert needs kind, speaker, t_start, t_end"):
        load_alerts(ev / "c1.events.jsonl")


def test_cli_synth_and_score(script_path, tmp_path, capsys):
    wav = tmp_path / "one.wav"
    assert main(["synth", str(script_path), "-o", str(wav), "--rate", "8000", "--no-noise"]) == 0
    audio, sr = read_wav(wav)
    assert sr == 8000 and np.count_nonzero(audio[: sr // 10]) == 0   # --no-noise: digital zero before speech
    assert "1 long_silence, 1 talk_over, 0 fast_speech, 1 agitation" in capsys.readouterr().out

    out = tmp_path / "corpus"
    assert main(["synth", "--random", "1", "--lang", "zh", "--rate", "8000", "--seed", "5", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["zh-000-8k.labels.json", "zh-000-8k.wav"]
    labels = json.loads((out / "zh-000-8k.labels.json").read_text())
    assert labels["language"] == "zh" and labels["sample_rate"] == 8000
    # a perfect detector scores 1.00 everywhere it has events
    ev = tmp_path / "events"
    ev.mkdir()
    write_events(ev / "zh-000-8k.events.jsonl", labels["events"])
    capsys.readouterr()
    assert main(["score", "--labels", str(out), "--events", str(ev), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["calls"] == 1
    for k in rep["kinds"].values():
        assert k["fp"] == 0 and k["fn"] == 0
    assert sum(k["tp"] for k in rep["kinds"].values()) == len(labels["events"])
