"""Whisper's trailing self-repeats are dropped; ordinary repetition in speech is kept."""
from callcue.daemon.asr.repeats import trim_repeat, trim_tokens


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


def test_tokens_are_cut_with_the_text():
    tokens = (" Call", " me", " back", " today.", " Call", " me", " back")
    text, _ = trim_repeat("".join(tokens).strip())
    assert text == "Call me back today."
    assert trim_tokens(tokens, text) == 4
