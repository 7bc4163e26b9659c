"""score-asr's per-turn breakdown: errors charged through the channel alignment (plain data)."""
from callcue.daemon.eval.score_asr import TurnTally, edit_distance, errors_per_ref_word, score_turns, turn_kind


def test_errors_land_on_the_reference_words_and_sum_to_the_edit_distance():
    ref = "the deductible on your contents cover".split()
    hyp = "uh the deductible on your content discover please".split()
    per = errors_per_ref_word(ref, hyp)
    assert sum(per) == edit_distance(ref, hyp) == 4
    assert per[0] == 1                     # the leading insertion goes to the first word
    assert per[4] + per[5] == 2 and per[5] >= 1
    assert errors_per_ref_word(["a"], []) == [1]
    assert errors_per_ref_word(["a", "b"], ["a", "b"]) == [0, 0]


def _final(speaker, t0, t1, text):
    return {"topic": "callcue/v1/line/l1/transcript", "final": True, "speaker": speaker,
            "t_start": t0, "t_end": t1, "text": text}


def test_one_final_spanning_two_turns_of_a_speaker_costs_nothing():
    turns = [{"speaker": "agent", "text": "Thanks for waiting.", "style": "normal", "t_start": 0, "t_end": 2,
              "espeak": {"voice": "en-us"}},
             {"speaker": "customer", "text": "Okay then.", "style": "normal", "t_start": 2.5, "t_end": 3.5,
              "espeak": {"voice": "en-us+f3"}},
             {"speaker": "agent", "text": "Bear with me.", "style": "fast", "t_start": 2.2, "t_end": 4,
              "espeak": {"voice": "en-us"}}]
    events = [_final("agent", 0, 4, "Thanks for waiting, bear with me."), _final("customer", 2.5, 3.5, "Okay den.")]
    tally = TurnTally()
    score_turns({"turns": turns}, events, tally)
    assert tally.words == {"normal, male": 3, "normal, female": 2, "fast, male": 3}
    assert tally.errors == {"normal, male": 0, "normal, female": 1, "fast, male": 0}
    assert turn_kind(turns[1]) == "normal, female" and tally.wer() == 1 / 8


def test_words_where_a_speaker_said_nothing_are_insertions():
    turns = [{"speaker": "agent", "text": "Hello.", "t_start": 0, "t_end": 1}]
    tally = TurnTally()
    score_turns({"turns": turns}, [_final("agent", 0, 1, "Hello."), _final("customer", 0, 1, "echo echo")], tally)
    assert tally.errors["(no turn)"] == 2 and tally.words == {"normal, male": 1}


def test_score_asr_and_the_whisper_check_count_words_one_way():
    from callcue.daemon.eval import score_asr, wer
    from callcue.models import whisper_check
    assert score_asr.wer_tokens is wer.wer_tokens and score_asr.edit_distance is wer.edit_distance
    assert whisper_check.Tally is wer.Tally
    t = wer.Tally()
    t.add("Okay, I can't see the claim from 2019.", "ok I cannot see the claim from twenty nineteen")
    assert (t.errors, t.words) == (0, len(wer.wer_tokens("Okay, I can't see the claim from 2019.")))
