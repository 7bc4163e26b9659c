"""daemon/text.py: one answer to "is this Chinese" everywhere, one syllable count."""
from __future__ import annotations

import pytest

from callcue.daemon.asr.words import normalise as words_normalise
from callcue.daemon.assist import bm25, match
from callcue.daemon.assist.knowledge import detect_lang
from callcue.daemon.text import cjk_count, dominant_lang, has_cjk, normalise, syllables

UNIFIED, EXT_A, COMPAT = "\u7406", "\u3400", "\uf900"   # 理, 㐀, 豈
HEXAGRAM = "\u4dc0"                                      # ䷀: a symbol between Ext A and Unified


@pytest.mark.parametrize("ch", [UNIFIED, EXT_A, "\u4db5", "\u9fa5", COMPAT, "\ufa6d"])
def test_chinese_characters_of_every_block(ch):
    assert has_cjk(f"ab {ch}") and cjk_count(ch * 3) == 3


@pytest.mark.parametrize("text", ["", "hello", "12345", HEXAGRAM, "\u3002\uff0c", "\uac00", "\u3042"])
def test_not_chinese(text):
    # punctuation, Hangul, kana and the Yijing hexagram symbols are not Chinese characters
    assert not has_cjk(text) and cjk_count(text) == 0


def test_the_tokenizers_agree_with_the_helper():
    text = f"My APP {UNIFIED}{EXT_A} ok {HEXAGRAM}"
    assert [t for t, _ in match._spans(match._clean(text))] == ["my", "app", UNIFIED, EXT_A, "ok"]
    assert bm25.CJK_RUN.findall(text) == [UNIFIED + EXT_A]
    assert normalise(text) == words_normalise(text) == f"my app {UNIFIED} {EXT_A} ok"


@pytest.mark.parametrize("text, lang", [
    ("how do I file a claim", "en"), ("我想申请理赔", "zh"), ("我的APP登录不了", "zh"),
    ("is my MRI covered 核磁共振", "en"), ("", None), ("12345", None), ("ok", None), ("豈", "zh"),
])
def test_dominant_lang(text, lang):
    assert dominant_lang(text) == lang
    assert detect_lang(text) == (lang or "en")


@pytest.mark.parametrize("text, n", [
    ("I can certainly help", 6), ("您好请问", 4), ("policy H M 4 7 2 9 1", 3 + 2 + 5),
    ("我的APP登录不了", 6 + 1), ("make the claim", 3), ("don't", 1), ("", 0),
])
def test_syllables(text, n):
    assert syllables(text) == n
