"""Ticket templates and the QA form as content-pack files: the shipped ones, mistakes
reported as file:line: field, hot reload, and the labelled after-call calls."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from callcue.daemon.aftercall.forms import ACTIONS, RESOLUTIONS
from callcue.daemon.assist.content import PackWatcher, load_content
from callcue.daemon.assist.pack import default_pack_dir, load_pack
from callcue.daemon.eval.aftercall_score import DEV, HELDOUT, TUNED
from callcue.daemon.eval.synth.script import load_script
from callcue.daemon.yamlfile import ConfigError

PACK = default_pack_dir()
COMMON = {"policy_number", "callback_number", "requested_action", "follow_up", "resolution"}


@pytest.fixture(scope="module")
def pack():
    return load_pack(PACK)


def test_shipped_templates_have_the_fields_the_desk_expects(pack):
    usable = {t.id: t for t in pack.tickets.usable()}
    assert {"claim_report", "claim_status", "billing", "policy_change", "cancellation"} <= set(usable)
    for t in usable.values():
        fields = {f.name: f for f in t.fields}
        assert COMMON <= set(fields), t.id
        assert {o.value for o in fields["requested_action"].options} == set(ACTIONS)
        assert {o.value for o in fields["resolution"].options} == set(RESOLUTIONS)
        assert fields["policy_number"].personal and fields["callback_number"].personal
        assert isinstance(t.title, dict) and set(t.title) == {"en", "zh"}
    fields = {f.name: f for f in usable["claim_report"].fields}
    assert {o.value for o in fields["claim_type"].options} == {"auto", "home", "travel", "health", "other"}
    assert fields["incident_date"].type == "date" and fields["incident_date"].tense == "past"
    assert [t.id for t in pack.tickets.usable() if t.default] == ["general"]
    assert pack.qa is not None and {i.judge for i in pack.qa.items} == {
        "flow_steps", "required_phrases", "sensitive_words", "interruptions", "dead_air", "speaking_rate",
        "agitation_handled", "offers", "ticket_complete"}


# ---------------------------------------------------------------- mistakes

@pytest.fixture
def broken(tmp_path) -> Path:
    root = tmp_path / "pack"
    shutil.copytree(PACK, root, ignore=shutil.ignore_patterns("eval"))
    return root


def _edit(path: Path, old: str, new: str) -> int:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def _error(root: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_pack(root)
    return str(info.value)


def test_unknown_field_in_a_template(broken):
    f = broken / "tickets" / "billing.yaml"
    line = _edit(f, "    type: money\n", "    type: money\n    colour: red\n") + 1
    assert f"billing.yaml:{line}: fields.0.colour: unknown field" in _error(broken)


def test_bad_field_type_and_enum_without_options(broken):
    f = broken / "tickets" / "billing.yaml"
    line = _edit(f, "    type: money\n", "    type: currency\n")
    assert f"billing.yaml:{line}: fields.0.type: Input should be" in _error(broken)
    _edit(f, "    type: currency\n", "    type: enum\n")
    assert "an enum needs options" in _error(broken)


def test_a_template_names_a_branch_that_does_not_exist(broken):
    f = broken / "tickets" / "claim_status.yaml"
    line = _edit(f, "  branches: [claim_status]\n", "  branches: [claim_stat]\n")
    assert f"claim_status.yaml:{line}: for.branches.0: no flow has a branch 'claim_stat'" in _error(broken)


def test_an_option_names_a_step_or_offer_that_does_not_exist(broken):
    f = broken / "tickets" / "general.yaml"
    line = _edit(f, "        steps: [schedule_callback]\n", "        steps: [schedule_call]\n")
    assert f"general.yaml:{line}: fields.4.options.1.steps.0: no step 'schedule_call'" in _error(broken)


def test_extends_an_unknown_template(broken):
    f = broken / "tickets" / "renewal.yaml"
    line = _edit(f, "extends: general\n", "extends: generic\n")
    assert f"renewal.yaml:{line}: extends: no template 'generic'" in _error(broken)


def test_an_action_outside_the_fixed_list(broken):
    f = broken / "tickets" / "general.yaml"
    _edit(f, "      - value: information\n", "      - value: enquiry\n")
    assert "requested_action: enquiry not one of" in _error(broken)


def test_an_option_names_an_unknown_knowledge_topic(broken, tmp_path):
    shutil.copytree(PACK / "knowledge", broken / "knowledge", dirs_exist_ok=True)
    f = broken / "tickets" / "claim_report.yaml"
    line = _edit(f, "        knowledge: [glass-repair]\n", "        knowledge: [glass-repairs]\n")
    with pytest.raises(ConfigError) as info:
        load_content(broken, None, 2.0)
    assert f"claim_report.yaml:{line}: fields.0.options.0.knowledge.0: no knowledge article has topic" in str(info.value)


def test_qa_form_mistakes(broken):
    f = broken / "qa.yaml"
    item = f.read_text(encoding="utf-8").split("\n").index("  - id: dead_air") + 1
    _edit(f, "    judge: dead_air\n", "    judge: dead_airs\n")
    assert f"qa.yaml:{item}: items.4: Input tag 'dead_airs' found using 'judge'" in _error(broken)
    _edit(f, "    judge: dead_airs\n", "    judge: dead_air\n")
    line = _edit(f, "    phrases: [greeting, identity_check, closing]\n", "    phrases: [greeting, hello]\n")
    assert f"qa.yaml:{line}: items.1.phrases.1: no required phrase 'hello' in rules.yaml" in _error(broken)
    _edit(f, "    phrases: [greeting, hello]\n", "    phrases: [greeting]\n")
    line = _edit(f, "    weight: 20\n", "    weight: 0\n")
    assert f"qa.yaml:{line}: items.0.weight" in _error(broken)


def test_a_template_edit_reloads_and_a_broken_one_is_refused(broken):
    build = lambda: load_content(broken, None, 2.0, knowledge=False)
    w = PackWatcher(build, build())
    f = broken / "tickets" / "billing.yaml"
    _edit(f, "  - name: amount\n", "  - name: amount_due\n")
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))
    new = w.check()
    assert new is not None and w.error is None
    assert "amount_due" in {x.name for x in new.pack.tickets.get("billing").fields}
    assert new.aftercall.templates["billing"].t.id == "billing"
    _edit(f, "    type: money\n", "    type: cash\n")
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    assert w.check() is None and "billing.yaml:" in w.error
    assert w.current is new                       # the last good version stays live


# ---------------------------------------------------------------- labelled calls

CALLS = sorted(TUNED.glob("*.yaml")) + sorted(HELDOUT.glob("*.yaml")) + sorted(DEV.glob("*.yaml"))


@pytest.mark.parametrize("path", CALLS, ids=[p.stem for p in CALLS])
def test_labels_name_fields_and_values_of_the_template(path, pack):
    s = load_script(path)
    ex = s.expect
    assert ex is not None and ex.call_type and ex.ticket is not None and ex.call_date is not None
    tpl = pack.tickets.get(ex.call_type)
    assert tpl is not None and not tpl.abstract
    fields = {f.name: f for f in tpl.fields}
    assert set(ex.ticket) <= set(fields), set(ex.ticket) - set(fields)
    for name, want in ex.ticket.items():
        f = fields[name]
        if f.type == "enum" and want is not None:
            assert want in {o.value for o in f.options}, (name, want)
        if f.source == "promise" and want is not None:
            assert isinstance(want, dict) and set(want) <= {"say", "due"}


@pytest.mark.parametrize("folder", [TUNED, HELDOUT], ids=["tuned", "held-out"])
def test_every_template_in_both_languages_with_fields_left_unsaid(folder):
    scripts = [load_script(p) for p in sorted(folder.glob("*.yaml"))]
    if folder == HELDOUT and not scripts:
        pytest.skip("no held-out calls")
    have = {(s.language, s.expect.call_type) for s in scripts}
    for t in ("claim_report", "claim_status", "billing", "policy_change", "cancellation"):
        assert {("en", t), ("zh", t)} <= have, t
    unsaid = sum(1 for s in scripts for n in COMMON if s.expect.ticket.get(n) is None)
    assert unsaid >= len(scripts) // 2


@pytest.mark.slow
def test_the_tuned_calls_meet_the_targets():
    from callcue.daemon.eval.aftercall_score import build_content, score_set
    tot = score_set(build_content(), sorted(TUNED.glob("*.yaml"))).totals()
    assert tot["stated_right"] >= 0.9 and tot["false_fill_rate"] <= 0.05 and tot["call_type_accuracy"] >= 0.9
