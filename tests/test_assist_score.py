"""Issue 5's must-show figures on the labelled insurance calls (flows/insurance/eval/assist_calls),
scored by `callcue score-assist` on the script text (both languages; the audio path with
the English demo model is in the README's measured figures and `-m slow`)."""
from __future__ import annotations

import pytest

from callcue.daemon.eval.score_assist import default_calls, run


@pytest.fixture(scope="module")
def figures():
    calls = default_calls()
    assert len(calls) >= 16
    return run(calls, audio=False, content=None).figures()


def test_knowledge_push_precision_and_coverage(figures):
    assert figures["knowledge_questions"] >= 30
    assert figures["knowledge_p_at_1"] >= 0.9, figures
    assert figures["knowledge_coverage"] >= 0.85, figures
    assert figures["push_delay_max_s"] <= 2.0


def test_flow_steps_and_call_type(figures):
    assert figures["flow_steps"] >= 100
    assert figures["flow_step_accuracy"] >= 0.9, figures
    assert figures["flow_choice"] >= 0.9, figures


def test_missing_phrase_raised_when_skipped_and_not_when_said(figures):
    assert figures["missing_phrase_recall"] == 1.0, figures
    assert figures["missing_phrase_precision"] == 1.0, figures


def test_offers_suggested_and_made(figures):
    assert figures["offer_fit_recall"] >= 0.9 and figures["offer_fit_precision"] >= 0.9, figures
    assert figures["offer_made_recall"] >= 0.9 and figures["offer_made_precision"] >= 0.9, figures


@pytest.mark.slow
@pytest.mark.needs_models("whisper-tiny.en", "silero-vad")
def test_english_calls_through_audio_and_speech_recognition():
    calls = [c for c in default_calls() if c.name.startswith("en_")]
    f = run(calls, audio=True, content=None).figures()
    print(f)
    assert f["knowledge_p_at_1"] >= 0.9 and f["push_delay_max_s"] <= 2.0, f
