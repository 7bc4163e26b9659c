"""The shipped insurance content pack, its labelled test calls, and broken-pack messages."""
from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from callcue.daemon.assist.knowledge import load_articles
from callcue.daemon.assist.match import PhraseSet
from callcue.daemon.assist.pack import ContentPack, Flow, default_pack_dir, load_pack
from callcue.daemon.eval.synth.script import CallScript, load_script
from callcue.daemon.yamlfile import ConfigError

PACK = default_pack_dir()
CALLS = sorted((PACK / "eval" / "assist_calls").glob("*.yaml"))


@pytest.fixture(scope="module")
def pack() -> ContentPack:
    return load_pack(PACK)


@pytest.fixture(scope="module")
def topics() -> set[str]:
    return {a.topic for a in load_articles(PACK / "knowledge")}


def _step_ids(flow: Flow) -> list[str]:
    return [s.id for s in flow.steps + flow.closing] + [s.id for b in flow.branches for s in b.steps]


def _steps(flow: Flow) -> dict:
    return {s.id: s for s in flow.steps + flow.closing + [s for b in flow.branches for s in b.steps]}


# ---------------------------------------------------------------- the pack itself

def test_shipped_pack_loads_with_both_languages(pack):
    assert pack.rules.name == "insurance-sample"
    for lang in ("en", "zh"):
        flows = [f for f in pack.flows if f.lang == lang]
        assert len(flows) >= 2, lang
        assert sum(f.default for f in flows) == 1, f"{lang}: exactly one default flow"
        assert 4 <= len([o for o in pack.offers if o.lang == lang]) <= 6, lang
    assert {r.id for r in pack.rules.required_phrases} == {"greeting", "identity_check", "closing"}


def test_ids_are_unique(pack):
    for name, ids in (("flow", [f.id for f in pack.flows]), ("offer", [o.id for o in pack.offers]),
                      ("required phrase", [r.id for r in pack.rules.required_phrases])):
        dup = [i for i, n in Counter(ids).items() if n > 1]
        assert not dup, f"duplicate {name} ids: {dup}"
    for f in pack.flows:
        dup = [i for i, n in Counter(_step_ids(f)).items() if n > 1]
        assert not dup, f"{f.id}: duplicate step ids {dup}"
        assert len({b.id for b in f.branches}) == len(f.branches), f.id
    words = [(w.phrase.lower(), w.speaker) for w in pack.rules.sensitive_words]
    assert len(set(words)) == len(words), "a sensitive word is listed twice"


def test_greeting_and_closing_phrases_do_not_overlap(pack):
    # the closing is checked "at any time before the end": a phrase shared with the greeting
    # would be counted as the closing line in the first seconds of every call
    req = {r.id: r for r in pack.rules.required_phrases}
    closing = PhraseSet((p, p) for p in req["closing"].say_any)
    greeting = PhraseSet((p, p) for p in req["greeting"].say_any)
    for p in req["greeting"].say_any:
        assert not closing.find(p), f"greeting phrase {p!r} contains a closing phrase"
    for p in req["closing"].say_any:
        assert not greeting.find(p), f"closing phrase {p!r} contains a greeting phrase"


def test_every_step_script_is_recognised_as_its_own_step(pack):
    # the standard line (blanks aside) must complete its step: an agent who reads the
    # script word for word has done the step
    for f in pack.flows:
        for sid, step in _steps(f).items():
            if not step.script or not step.keywords:
                continue
            lines = [part.replace("___", " ") for part in step.script.split(" / ")]
            kws = PhraseSet((k, k) for k in step.keywords)
            assert any(kws.find(line) for line in lines), f"{f.id}/{sid}: no keyword in its own script"


# ---------------------------------------------------------------- labelled calls

@pytest.fixture(scope="module")
def scripts() -> dict[str, CallScript]:
    return {p.stem: load_script(p) for p in CALLS}


def test_there_are_eight_labelled_calls_per_language(scripts):
    langs = Counter(s.language for s in scripts.values())
    assert langs == {"en": 8, "zh": 8}
    for name, s in scripts.items():
        assert s.expect is not None and s.expect.flow, name
        assert s.sample_rate == 16000, name
        assert 10 <= len(s.turns) <= 25, name


@pytest.mark.parametrize("path", CALLS, ids=[p.stem for p in CALLS])
def test_call_labels_name_what_exists_in_the_pack(path, pack, topics):
    s = load_script(path)
    ex = s.expect
    flows = {f.id: f for f in pack.flows}
    assert ex.flow in flows, f"{path.name}: unknown flow {ex.flow}"
    flow = flows[ex.flow]
    assert flow.lang == s.language, f"{path.name}: {flow.id} is a {flow.lang} flow"
    required = {r.id for r in pack.rules.required_phrases}
    assert set(ex.missing) <= required, f"{path.name}: unknown required phrase in {ex.missing}"
    if ex.team is not None:
        assert ex.team in pack.rules.teams, f"{path.name}: team {ex.team} has no thresholds in rules.yaml"
    if ex.ivr is not None:
        intent = ex.ivr["intent"]
        assert ex.ivr.get("lang") == s.language, f"{path.name}: the IVR context should carry the call's lang"
        chosen = next((f for f in pack.flows if f.lang == s.language and intent in f.ivr), None) or next(
            (f for f in pack.flows if f.lang == s.language and any(intent in b.ivr for b in f.branches)), None)
        assert chosen is not None and chosen.id == ex.flow, f"{path.name}: IVR intent {intent} selects {chosen}"

    steps = _steps(flow)
    offers = {o.id: o for o in pack.offers}
    sensitive = {w.phrase: w for w in pack.rules.sensitive_words}
    seen: list[str] = []
    for i, t in enumerate(s.turns):
        te = t.expect
        if te is None:
            continue
        where = f"{path.name} turn {i + 1}"
        for sid in te.steps:
            assert sid in steps, f"{where}: step {sid} is not in {flow.id}"
            assert steps[sid].speaker in (t.speaker, "any"), f"{where}: {sid} is done by the {steps[sid].speaker}"
        seen += te.steps
        if te.branch is not None:
            assert te.branch in {b.id for b in flow.branches}, f"{where}: branch {te.branch} not in {flow.id}"
            assert t.speaker == "customer", f"{where}: the customer chooses the branch"
        for key, side in (("offer_fits", "customer"), ("offer_made", "agent")):
            oid = getattr(te, key)
            if oid is not None:
                assert oid in offers, f"{where}: unknown offer {oid}"
                assert offers[oid].lang == s.language, f"{where}: {oid} is a {offers[oid].lang} offer"
                assert t.speaker == side, f"{where}: {key} belongs on a {side} turn"
        if te.knowledge is not None:
            assert te.knowledge in topics, f"{where}: no knowledge article has topic {te.knowledge}"
            assert t.speaker == "customer", f"{where}: knowledge is pushed for customer questions"
        for phrase in te.sensitive:
            assert phrase in sensitive, f"{where}: {phrase!r} is not a sensitive word of the pack"
            assert sensitive[phrase].speaker in (t.speaker, "any"), f"{where}: {phrase!r} is checked on the other side"
    dup = [sid for sid, n in Counter(seen).items() if n > 1]
    assert not dup, f"{path.name}: steps labelled twice: {dup}"


@pytest.mark.parametrize("path", CALLS, ids=[p.stem for p in CALLS])
def test_sensitive_labels_are_complete(path, pack):
    """Every rule-pack sensitive word in a turn is labelled there, and nothing else is."""
    s = load_script(path)
    by_side = {side: PhraseSet((w.phrase, w.phrase) for w in pack.rules.sensitive_words
                               if w.speaker in (side, "any")) for side in ("agent", "customer")}
    for i, t in enumerate(s.turns):
        found = {f.item for f in by_side[t.speaker].find(t.text)}
        labelled = set(t.expect.sensitive) if t.expect else set()
        assert found == labelled, f"{path.name} turn {i + 1}: found {sorted(found)}, labelled {sorted(labelled)}"


def test_calls_cover_branches_deadlines_and_offers(scripts, pack):
    flows = {f.id: f for f in pack.flows}
    for lang in ("en", "zh"):
        calls = [s for s in scripts.values() if s.language == lang]
        covered: set[tuple[str, str]] = set()
        for s in calls:
            flow = flows[s.expect.flow]
            branch_of = {st.id: b.id for b in flow.branches for st in b.steps}
            for t in s.turns:
                if t.expect:
                    covered |= {(flow.id, branch_of[sid]) for sid in t.expect.steps if sid in branch_of}
                    if t.expect.branch:
                        covered.add((flow.id, t.expect.branch))
        want = {(f.id, b.id) for f in pack.flows if f.lang == lang for b in f.branches}
        assert want <= covered, f"{lang}: branches without a labelled call: {sorted(want - covered)}"
        missing = Counter(m for s in calls for m in s.expect.missing)
        assert set(missing) >= {"greeting", "identity_check", "closing"}, f"{lang}: {missing}"
        assert any(s.expect.missing == [] for s in calls), f"{lang}: no call where everything is said"
        assert any(s.expect.ivr for s in calls), f"{lang}: no IVR-routed call"
        made_after_fit = missed = 0
        for s in calls:
            fits = {t.expect.offer_fits for t in s.turns if t.expect and t.expect.offer_fits}
            made = {t.expect.offer_made for t in s.turns if t.expect and t.expect.offer_made}
            made_after_fit += len(fits & made)
            missed += len(fits - made)
        assert made_after_fit and missed, f"{lang}: need calls where a fitting offer is made, and is not"
        questions = Counter(t.expect.knowledge for s in calls for t in s.turns if t.expect and t.expect.knowledge)
        assert sum(questions.values()) >= 2 * len(calls) - 2, f"{lang}: few knowledge questions: {questions}"


def test_labelled_calls_test_paraphrase_not_only_keywords(scripts, pack):
    """A good share of the step-completing turns must not contain a keyword of their step,
    so the figures measure matching of paraphrases too; adding a call's exact wording as a
    keyword shows up here."""
    flows = {f.id: f for f in pack.flows}
    for lang in ("en", "zh"):
        total = with_kw = 0
        for s in scripts.values():
            if s.language != lang:
                continue
            steps = _steps(flows[s.expect.flow])
            for t in s.turns:
                for sid in (t.expect.steps if t.expect else []):
                    total += 1
                    with_kw += bool(PhraseSet((k, k) for k in steps[sid].keywords).find(t.text))
        assert 0.3 <= (total - with_kw) / total <= 0.7, f"{lang}: {total - with_kw} of {total} step turns paraphrase"


# ---------------------------------------------------------------- broken packs

@pytest.fixture
def broken(tmp_path) -> Path:
    root = tmp_path / "pack"
    shutil.copytree(PACK, root, ignore=shutil.ignore_patterns("knowledge"))
    return root


def _edit(path: Path, old: str, new: str) -> int:
    """Replace `old` once; return the 1-based line where the new text starts."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def _error(root: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_pack(root)
    return str(info.value)


def test_unknown_field_names_file_line_and_field(broken):
    f = broken / "flows" / "inbound-service.en.yaml"
    line = _edit(f, "    title: Verify identity\n", "    title: Verify identity\n    colour: red\n") + 1
    assert re.match(rf"^{re.escape(str(f))}:{line}: steps\.1\.colour: unknown field", _error(broken))


def test_required_phrase_with_two_deadlines(broken):
    f = broken / "rules.yaml"
    text = f.read_text(encoding="utf-8")
    item_line = text[: text.index("  - id: identity_check")].count("\n") + 1
    _edit(f, "    before_speaker: agent\n", "    before_speaker: agent\n    within_s: 30\n")
    msg = _error(broken)
    assert re.match(rf"^{re.escape(str(f))}:{item_line}: required_phrases\.1: ", msg), msg
    assert "exactly one deadline" in msg


def test_duplicate_step_id(broken):
    f = broken / "flows" / "inbound-service.zh.yaml"
    _edit(f, "  - id: verify\n", "  - id: greet\n")
    msg = _error(broken)
    # a flow-wide check: reported at the flow's first line, naming the duplicate
    assert re.match(rf"^{re.escape(str(f))}:\d+: \(top level\): ", msg), msg
    assert "step ids must be unique in a flow: greet" in msg


def test_unknown_team_threshold(broken):
    f = broken / "rules.yaml"
    text = f.read_text(encoding="utf-8")
    # the value's line: the first team under `teams:`
    teams_line = text[: text.index("\n  claims:") + 1].count("\n") + 1
    _edit(f, "    long_silence_s: 8.0\n", "    long_silence: 8.0\n")
    msg = _error(broken)
    assert re.match(rf"^{re.escape(str(f))}:{teams_line}: teams: ", msg), msg
    assert "team 'claims': unknown threshold(s) long_silence" in msg and "long_silence_s" in msg


def test_offer_id_used_twice(broken):
    f = broken / "offers" / "travel.zh.yaml"
    _edit(f, "id: travel-zh\n", "id: travel-en\n")
    msg = _error(broken)
    assert re.match(rf"{re.escape(str(f))}:\d+: id: offer id 'travel-en' is already used by ", msg), msg
    assert "travel.en.yaml" in msg
