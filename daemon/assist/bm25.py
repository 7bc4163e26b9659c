"""Okapi BM25 over short documents, and the analyzers that turn text into its terms.

English: lower case, UK/US spelling folded, stopwords and call fillers dropped, the light
stemmer of match.py. Chinese: jieba's search-mode words and single characters (exact
characters) plus toneless pinyin syllable bigrams with the usual flat/retroflex merges (match.py's rules), so a
homophone the recogniser wrote (理陪 for 理赔) still shares its bigram with the right
word; a character run jieba splits differently than the article still meets it there.

`BM25.coverage` is the score the knowledge base uses: BM25 over its ceiling for the
query (every query term saturated in the document), 0..1. Unlike a raw BM25 sum it is comparable
across queries, so one threshold works for short and long questions alike; query terms
the index has never seen count in the denominator as rare terms, which is what keeps
chit-chat ("can you hear me") near zero. Pure apart from jieba's one-time dictionary load.
"""
from __future__ import annotations

import logging
import math
import re
import threading
import unicodedata
from collections import Counter
from typing import Iterable, Sequence

import numpy as np
from pypinyin import lazy_pinyin

from ..text import CJK_RUN
from .match import EN_STOP, ZH_STOP, _fuzzy, stem

_LATIN = re.compile(r"[a-z0-9]+")

# Words that carry no topic in a caller's question (on top of match.EN_STOP).
EN_FILLER = frozenset("""anyone anybody someone somebody everyone everybody um uhm uh er erm hmm mm yeah yep yup hey hi hello okay ok alright sure thanks thank
please sorry wondering wonder calling ask asking question tell guy guys sir madam maam mam actually basically
kind sort anyway gonna wanna gotta something anything thing things way ive id ill whats hows wheres whos theres
isnt arent wasnt doesnt didnt havent hasnt wont wouldnt couldnt shouldnt im youre were theyre thats just
still""".split())
# UK/US spellings and regional words for the same thing meet at one term.
EN_VARIANTS = {"tyre": "tire", "tyres": "tire", "licence": "license", "licences": "license",
               "windscreen": "windshield", "windscreens": "windshield", "authorisation": "authorization",
               "authorise": "authorize", "authorised": "authorize", "pre-authorisation": "preauthorization",
               "cheque": "check", "colour": "color", "centre": "center", "programme": "program",
               "cancelation": "cancellation", "motorway": "highway", "favour": "favor", "jewellery": "jewelry"}
# Multi-character Chinese function words jieba keeps whole (single characters are in match.ZH_STOP).
ZH_STOP_WORDS = frozenset("""怎么 怎么样 怎样 什么 如何 为什么 哪里 哪些 哪个 多少 可以 能不能 可不可以 是不是 会不会 要不要
有没有 请问 一下 这个 那个 这样 那样 我们 你们 他们 的话 还是 就是 然后 现在 应该 需要 想要 知道 一个 一些 自己 时候
怎么办 怎么弄 帮我 麻烦 您好 你好 谢谢 好的 没有 不是 已经 如果 因为 所以 但是 或者 还有""".split())

_jieba = None
_jieba_lock = threading.Lock()


def jieba_tokenizer():
    """jieba's default tokenizer, initialised once and without its start-up chatter."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba
                jieba.setLogLevel(logging.WARNING)
                tok = jieba.Tokenizer()
                tok.initialize()
                _jieba = tok
    return _jieba


def _clean(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower().replace("'", "").replace("\u2019", "")


def en_terms(text: str) -> list[str]:
    """English terms: lower case, variants folded, stopwords/fillers out, light stems."""
    out = []
    for w in _LATIN.findall(_clean(text).replace("pre-", "pre")):
        w = EN_VARIANTS.get(w, w)
        if w in EN_STOP or w in EN_FILLER:
            continue
        out.append(stem(w))
    return out


def zh_terms(text: str) -> list[str]:
    """Chinese terms: jieba search-mode words, single characters ('c:赔': partial credit
    where jieba cuts the question and the article differently), pinyin bigrams
    ('~li|pei'), and English terms of any Latin words mixed in (APP, MRI, CT)."""
    text = _clean(text)
    out: list[str] = []
    for run in CJK_RUN.findall(text):
        for w in jieba_tokenizer().lcut_for_search(run):
            if w in ZH_STOP_WORDS or (len(w) == 1 and w in ZH_STOP):
                continue
            out.append(w)
        out += [f"c:{ch}" for ch in run if ch not in ZH_STOP]
        sounds = [_fuzzy(s) for s in lazy_pinyin(run)]
        for i in range(len(run) - 1):
            if run[i] in ZH_STOP or run[i + 1] in ZH_STOP:
                continue
            out.append(f"~{sounds[i]}|{sounds[i + 1]}")
    out += en_terms(CJK_RUN.sub(" ", text))
    return out


def analyze(text: str, lang: str) -> list[str]:
    """Index terms of ``text`` in language ``lang`` ('en' or 'zh')."""
    if lang == "zh":
        return zh_terms(text)
    if lang == "en":
        return en_terms(text)
    raise ValueError(f"unknown language {lang!r} (en or zh)")


class BM25:
    """Okapi BM25 (k1, b) over documents given as term lists; weights precomputed dense
    (knowledge bases are tens to a few thousand short documents)."""

    def __init__(self, docs: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75):
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError("BM25 needs k1 >= 0 and 0 <= b <= 1")
        self.k1, self.b = k1, b
        self.n = len(docs)
        self.vocab: dict[str, int] = {}
        counts = [Counter(d) for d in docs]
        for c in counts:
            for t in c:
                self.vocab.setdefault(t, len(self.vocab))
        tf = np.zeros((self.n, len(self.vocab)), dtype=np.float64)
        for i, c in enumerate(counts):
            for t, k in c.items():
                tf[i, self.vocab[t]] = k
        lengths = np.array([len(d) for d in docs], dtype=np.float64)
        avg = lengths.mean() if self.n and lengths.mean() > 0 else 1.0
        df = (tf > 0).sum(axis=0)
        # the non-negative (Lucene) idf: a term in every document still counts a little
        self.idf = np.log1p((self.n - df + 0.5) / (df + 0.5))
        self.unseen_idf = math.log1p((self.n - 1 + 0.5) / 1.5) if self.n else 1.0   # as rare as df=1
        norm = k1 * (1 - b + b * lengths / avg)
        self.weights = self.idf * tf * (k1 + 1) / (tf + norm[:, None] + 1e-12)

    def _ids(self, query: Iterable[str]) -> tuple[list[int], int]:
        ids, unseen = [], 0
        for t in dict.fromkeys(query):
            j = self.vocab.get(t)
            if j is None:
                unseen += 1
            else:
                ids.append(j)
        return ids, unseen

    def scores(self, query: Iterable[str]) -> np.ndarray:
        """Raw BM25 of every document for the query's distinct terms."""
        ids, _ = self._ids(query)
        if not ids:
            return np.zeros(self.n)
        return self.weights[:, ids].sum(axis=1)

    def coverage(self, query: Iterable[str], min_terms: float = 0.0) -> np.ndarray:
        """Per document, 0..1: BM25 divided by its ceiling for this query, every query term
        (seen or not) saturating in the document. A term found once in a document of
        average length gives 1/(k1+1) of its share; unseen terms only add to the ceiling.
        ``min_terms``: the ceiling is at least that many rare terms' worth, so a query of
        one or two common words cannot reach full coverage (thin evidence)."""
        ids, unseen = self._ids(query)
        mass = max(float(self.idf[ids].sum()) + unseen * self.unseen_idf, min_terms * self.unseen_idf)
        if mass <= 0 or not ids:
            return np.zeros(self.n)
        return self.weights[:, ids].sum(axis=1) / (mass * (self.k1 + 1))
