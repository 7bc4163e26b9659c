"""Whisper's trailing self-repeats are dropped; ordinary repetition in speech is kept."""
from callcue.daemon.asr.repeats import drop_loops, trim_repeat


def test_a_final_that_starts_over_is_cut_where_the_repeat_begins():
    assert trim_repeat("Can you tell me why I was charged twice this month? Can you tell me why") == (
        "Can you tell me why I was charged twice this month?", 5)
    # a clause looping until the recogniser's token cap
    text, dropped = trim_repeat("Let me bring up your account and take a look. Let me bring up your account and "
                                "take a look. Let me bring up your")
    assert text == "Let me bring up your account and take a look." and dropped == 15
    # the loop may start mid-utterance; what came before it stays
    assert trim_repeat("and you are verified. Let me check that. Let me check that.")[0] == \
        "and you are verified. Let me check that."


def test_speech_that_repeats_short_words_or_does_not_repeat_is_unchanged():
    for text in ("No, no, no, thank you, thank you.", "I would like to add my daughter as a driver",
                 "the policy number is H M one two three", "yes", "",
                 "I said the claim, the claim form, was sent"):
        assert trim_repeat(text) == (text, 0), text


def test_a_clause_looped_three_times_mid_utterance_is_kept_once():
    text = ("and you can ask for it, the only time I'm writing, the only time I'm writing, the only time I'm "
            "writing, the protection of this.")
    assert drop_loops(text, ())[::2] == ("and you can ask for it, the only time I'm writing, the protection of this.", 10)
    # said twice is speech; short words three times too
    for text in ("I am so sorry, I am so sorry about that.", "No, no, no, it was me, me, me all along."):
        assert drop_loops(text, ())[::2] == (text, 0), text


def test_tokens_follow_the_text():
    tokens = (" Call", " me", " back", " today.", " Call", " me", " back")
    assert drop_loops("".join(tokens).strip(), tokens) == ("Call me back today.", (0, 1, 2, 3), 3)
    # a word of several tokens, a loop in the middle and a tail repeat together
    tokens = (" Sum", "mit", " is", " right", " here", " is", " right", " here", " is", " right", " here,", " we",
              " do", " cover", " it.", " We", " do", " cover")
    text, keep, dropped = drop_loops("".join(tokens).strip(), tokens)
    assert text == "Summit is right here, we do cover it."
    assert keep == (0, 1, 8, 9, 10, 11, 12, 13, 14)
    assert dropped == 9
    assert drop_loops("Thank you.", (" Thank", " you.")) == ("Thank you.", (0, 1), 0)
