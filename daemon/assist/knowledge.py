"""Knowledge base: Markdown articles with front matter, found by hybrid retrieval.

An article is one file `knowledge/<topic>.<lang>.md`:

    ---
    id: claim-filing-en        # unique in the folder
    topic: claim-filing        # shared by the language versions; pushed once per call
    lang: en                   # en | zh
    title: How to file a claim
    questions:                 # how customers ask it (3-8 phrasings work best)
      - how do I file a claim
    tags: [claims]
    ---
    Short answer first, then steps and conditions (Markdown).

Retrieval (`KnowledgeBase.search`) scores the articles of the question's language with
two signals, each normalised *per query* onto an absolute 0..1 scale (not min-max across
the articles: that would give every query's best article 1.0, and no threshold could
then tell a question from chit-chat):

- lexical: BM25 `coverage` (bm25.py): BM25 over its ceiling for this query, so it reads
  as "how much of what was asked this article holds". Title, questions and tags form one
  index, the body another that counts BODY_WEIGHT. A query needs EVIDENCE_TERMS rare
  terms' worth of words for full credit, so one stray word ("is this the right number")
  cannot score high. Coverage LEX_FULL already counts as 1. English terms: stems without
  stopwords; Chinese: jieba words, single characters and pinyin bigrams, so homophone
  errors of the recogniser (理陪 / 理赔) still match. A long turn is also scored clause
  by clause (`clauses`) and each article keeps its best, so the question at the end of
  "the plate is ..., my wife drives it too, is she covered?" is not diluted.
- semantic: cosine between the query's sentence embedding (all-MiniLM-L6-v2 on OpenVINO,
  int8) and the article's title and questions (the best of them), rescaled so that
  SEM_FLOOR ("unrelated") maps to 0 and SEM_CEIL ("a paraphrase") to 1.

The two are weighted by language, `WEIGHTS`. all-MiniLM-L6-v2 is an English model: it
sees Chinese as isolated characters, and on the labelled questions its Chinese P@1 was
0.42 against 0.94 for the lexical path, while for English the two were 0.98 and 0.85 and
together 1.0. So English weighs them equally, Chinese uses the lexical signal alone (and
its queries are not encoded). Without an embedder the score is the lexical signal.

`Hit.score` is meant for one threshold: MIN_SCORE (0.40) is the recommended push level
with or without the embedder; chit-chat ("what's the weather like", "can you hear me",
"你吃饭了吗") stays below it. `callcue score-knowledge` prints the right / wrong /
off-topic pushes at other thresholds.

Pure except `load` (reads the folder) and the embedder it is given.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, Sequence

import numpy as np
from pydantic import Field

from ..schema import Strict
from ..text import dominant_lang
from ..yamlfile import ConfigError, parse_yaml, validate_doc
from .bm25 import BM25, analyze
from .pack import Id, Phrases

LANGS = ("en", "zh")
# (lexical, semantic) weight per language when an embedder is loaded; see the module doc
WEIGHTS = {"en": (0.5, 0.5), "zh": (1.0, 0.0)}
SEM_FLOOR, SEM_CEIL = 0.2, 0.8       # MiniLM cosine: unrelated sentences / paraphrases
BODY_WEIGHT = 0.7                     # body coverage against head (title, questions, tags) coverage
EVIDENCE_TERMS = {"en": 3.0, "zh": 8.0}   # rare terms' worth a query needs for full lexical credit
LEX_FULL = 0.5                        # coverage that already means "this is the article" (-> 1.0)
# Recommended push threshold, with or without the embedder: chit-chat written for tuning
# topped out at 0.27 (hybrid) / 0.31 (lexical only); of the labelled chit-chat,
# "my name is john smith" reached 0.37 (hybrid), hence 0.40 rather than 0.35.
MIN_SCORE = 0.40


class Encoder(Protocol):
    """What the knowledge base needs of an embedder (embed.Embedder, content.CachedEncoder)."""

    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


class FrontMatter(Strict):
    """The YAML block between the `---` lines at the top of a knowledge article."""

    id: Id = Field(description="unique id of this article (e.g. claim-filing-en); shown in suggestions")
    topic: Id = Field(description="topic shared by the language versions of one answer; pushed at most once per call")
    lang: Literal["en", "zh"] = Field(description="language of the article and its questions: en or zh")
    title: str = Field(min_length=1, description="headline shown to the agent; also used for retrieval")
    questions: Phrases = Field(
        min_length=1, max_length=20,
        description="how customers ask for this (3-8 phrasings work best); the main retrieval text")
    tags: Phrases = Field(
        default_factory=list, description="keywords (product, process); indexed with the questions")


@dataclass(frozen=True)
class Article:
    id: str
    topic: str
    lang: str
    title: str
    questions: tuple[str, ...]
    tags: tuple[str, ...]
    body: str
    path: Path | None = None


@dataclass(frozen=True)
class Hit:
    article: Article
    score: float        # combined, 0..1, compare with MIN_SCORE
    lexical: float      # lexical signal (BM25 coverage, scaled), 0..1
    semantic: float     # rescaled cosine, 0..1 (0 without an embedder)


# ---------------------------------------------------------------- files

_FENCE = re.compile(r"^---\s*$")


def parse_article(path: Path, text: str) -> Article:
    """One article file's text -> Article; ConfigError names file, line and field."""
    lines = text.lstrip("\ufeff").split("\n")
    if not lines or not _FENCE.match(lines[0]):
        raise ConfigError(f"{path}:1: the article must start with a front matter block "
                          f"(a line '---', the YAML fields, a line '---')")
    end = next((i for i in range(1, len(lines)) if _FENCE.match(lines[i])), None)
    if end is None:
        raise ConfigError(f"{path}:1: the front matter opened by '---' is never closed by a '---' line")
    # leading blank lines keep YAML's line marks equal to the file's line numbers
    yaml_text = "\n" + "\n".join(lines[1:end])
    doc = parse_yaml(yaml_text, path, " in the front matter")
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{path}:2: the front matter must be YAML fields (id, topic, lang, title, questions, tags)")
    fm = validate_doc(doc, FrontMatter)
    body = "\n".join(lines[end + 1:]).strip()
    if not body:
        raise ConfigError(f"{path}:{end + 2}: body: the article has no text after the front matter")
    return Article(fm.id, fm.topic, fm.lang, fm.title.strip(), tuple(fm.questions), tuple(fm.tags), body, path)


def _field_line(path: Path, text: str, name: str) -> int:
    for i, line in enumerate(text.split("\n"), 1):
        if line.startswith(f"{name}:"):
            return i
    return 1


def load_articles(folder: str | Path) -> list[Article]:
    """Every `*.md` of the folder (README.md aside), validated; ids unique, one article per
    topic and language."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: knowledge folder not found")
    articles: list[Article] = []
    by_id: dict[str, Path] = {}
    by_topic: dict[tuple[str, str], Path] = {}
    for path in sorted(folder.glob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        art = parse_article(path, text)
        if art.id in by_id:
            raise ConfigError(f"{path}:{_field_line(path, text, 'id')}: id: {art.id!r} is already used by {by_id[art.id]}")
        key = (art.topic, art.lang)
        if key in by_topic:
            raise ConfigError(f"{path}:{_field_line(path, text, 'topic')}: topic: {art.topic!r} already has a "
                              f"{art.lang} article ({by_topic[key]}); one article per topic and language")
        by_id[art.id] = by_topic[key] = path
        articles.append(art)
    if not articles:
        raise ConfigError(f"{folder}: no knowledge articles (*.md) in the folder")
    return articles


# ---------------------------------------------------------------- retrieval

@dataclass
class _Index:
    """The articles of one language: BM25 over their heads (title, questions, tags) and
    over their bodies, and their embedding rows."""

    articles: list[Article]
    head_bm25: BM25
    body_bm25: BM25
    vectors: np.ndarray | None = None      # (texts, dim) unit vectors
    owner: np.ndarray | None = None        # article index of each vector row


def head_terms(a: Article) -> list[str]:
    return analyze(" \n ".join((a.title, *a.questions, *a.tags)), a.lang)


_CLAUSE_BREAK = re.compile(r"[。？！；，、?!;,.]+\s*|\s+-\s+")
CLAUSE_MAX = {"en": 24, "zh": 24}     # longer clauses are also read in overlapping windows (words / characters)


def clauses(text: str, lang: str) -> list[str]:
    """The utterance and its parts, each scored on its own: a caller's question is often
    one clause of a longer turn ("the plate is ..., and my wife drives it too, is she
    covered?"), and coverage of the whole turn would dilute it. Unpunctuated long text
    (recognisers often give none) is read in overlapping windows."""
    out = [text]
    parts = [p for p in _CLAUSE_BREAK.split(text) if p.strip()]
    for p in parts:
        units = p.split() if lang == "en" else list(p.strip())
        n = CLAUSE_MAX[lang]
        if len(parts) > 1:
            out.append(p)
        if len(units) > n:
            step = n // 2
            joiner = " " if lang == "en" else ""
            out += [joiner.join(units[i:i + n]) for i in range(0, len(units) - step, step)]
    return list(dict.fromkeys(out))


def semantic_texts(a: Article) -> list[str]:
    """What an article's embedding rows are made of."""
    return [a.title, *a.questions]


def lexical_score(head: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Head and body coverage -> 0..1; the body only adds evidence (it mentions many topics)."""
    raw = (head + BODY_WEIGHT * body) / (1 + BODY_WEIGHT)
    return np.clip(raw / LEX_FULL, 0.0, 1.0)


def rescale_cosine(cos: np.ndarray) -> np.ndarray:
    return np.clip((cos - SEM_FLOOR) / (SEM_CEIL - SEM_FLOOR), 0.0, 1.0)


class KnowledgeBase:
    """Articles of every language, searchable by a customer's question (see module doc)."""

    def __init__(self, articles: Sequence[Article], embedder: Encoder | None = None):
        self.articles = list(articles)
        self.embedder = embedder
        self._index: dict[str, _Index] = {}
        for lang in LANGS:
            arts = [a for a in self.articles if a.lang == lang]
            if arts:
                self._index[lang] = _Index(arts, BM25([head_terms(a) for a in arts]),
                                           BM25([analyze(a.body, a.lang) for a in arts]))
        if embedder is not None:
            self._embed_articles(embedder)

    def _embed_articles(self, embedder: Encoder) -> None:
        for ix in self._index.values():
            texts, owner = [], []
            for i, a in enumerate(ix.articles):
                for t in semantic_texts(a):
                    texts.append(t)
                    owner.append(i)
            vecs = np.concatenate([np.asarray(embedder.encode(texts[j:j + 64]), dtype=np.float32)
                                   for j in range(0, len(texts), 64)])
            if vecs.shape != (len(texts), embedder.dim):
                raise ValueError(f"embedder returned shape {vecs.shape} for {len(texts)} texts of dim {embedder.dim}")
            ix.vectors, ix.owner = vecs, np.array(owner)

    @classmethod
    def load(cls, folder: str | Path, embedder: Encoder | None = None) -> "KnowledgeBase":
        """Read and validate the folder's articles (ConfigError on the first broken one) and
        embed their titles and questions once."""
        return cls(load_articles(folder), embedder)

    @property
    def min_score(self) -> float:
        """Recommended push threshold for this base (with or without embedder)."""
        return MIN_SCORE

    @property
    def topics(self) -> list[str]:
        return sorted({a.topic for a in self.articles})

    def signals(self, text: str, lang: str | None = None, semantic: bool = True
                ) -> tuple[list[Article], np.ndarray, np.ndarray]:
        """Articles of the query's language with their lexical and semantic signal (0..1).
        The semantic row is all zeros without an embedder or with ``semantic`` False."""
        lang = lang or detect_lang(text)
        ix = self._index.get(lang)
        if ix is None:
            return [], np.zeros(0), np.zeros(0)
        need = EVIDENCE_TERMS[lang]
        lex = np.zeros(len(ix.articles))
        for part in clauses(text, lang):
            terms = analyze(part, lang)
            lex = np.maximum(lex, lexical_score(ix.head_bm25.coverage(terms, need), ix.body_bm25.coverage(terms, need)))
        sem = np.zeros(len(ix.articles))
        if semantic and self.embedder is not None and ix.vectors is not None and text.strip():
            q = np.asarray(self.embedder.encode([text]), dtype=np.float32)[0]
            cos = ix.vectors @ q
            best = np.full(len(ix.articles), -1.0)
            np.maximum.at(best, ix.owner, cos)
            sem = rescale_cosine(best)
        return ix.articles, lex, sem

    def weights(self, lang: str) -> tuple[float, float]:
        return WEIGHTS[lang] if self.embedder is not None else (1.0, 0.0)

    def search(self, text: str, lang: str | None = None, k: int = 3) -> list[Hit]:
        """Best ``k`` articles (one per topic) of the question's language, best first.
        ``lang`` None: detect_lang(text). No article of that language: []."""
        lang = lang or detect_lang(text)
        arts, lex, sem = self.signals(text, lang, semantic=self.weights(lang)[1] > 0)
        return self.rank(arts, lex, sem, lang, k)

    def rank(self, arts: list[Article], lex: np.ndarray, sem: np.ndarray, lang: str, k: int) -> list[Hit]:
        """Combine the signals of `signals` into the best ``k`` hits (what `search` returns)."""
        if not arts:
            return []
        wl, ws = self.weights(lang)
        score = wl * lex + ws * sem
        order = np.argsort(-score, kind="stable")[:max(k, 0)]
        return [Hit(arts[i], float(score[i]), float(lex[i]), float(sem[i])) for i in order]


# ---------------------------------------------------------------- utterances

def detect_lang(text: str) -> str:
    """'zh' when CJK characters dominate (text.dominant_lang), else 'en' (also when there
    is too little text to tell)."""
    return dominant_lang(text) or "en"


_EN_WH = re.compile(r"\b(what|whats|what's|how|hows|how's|why|when|where|wheres|where's|which|who|whom|whose)\b")
_EN_AUX = re.compile(r"^(?:(?:so|and|but|um|uh|er|erm|oh|ok|okay|yeah|yes|well|hi|hello|hey|sorry|right|and)\W+)*"
                     r"(can|could|will|would|do|does|did|is|are|am|was|were|should|shall|may|might|have|has|had|must|"
                     r"isnt|arent|doesnt|dont|didnt|wont|cant|wouldnt|couldnt|shouldnt|havent|hasnt)\s+"
                     r"(i|you|we|they|he|she|it|my|your|our|the|this|that|these|those|there|someone|somebody|anyone|"
                     r"anybody|a|an|me|us)\b")
# ASR text has no sentence breaks: "i moved last month can you update it" inverts mid-way
_EN_AUX_MID = re.compile(r"\b(can|could|will|would|do|does|did|am|is|are|should|shall)\s+(i|you|he|she|we|they)\b|"
                         r"\b(is|are|does|will|would|can)\s+(that|it|this|there|my|your|the)(?:\s+\w+){0,3}\s+"
                         r"(covered|cover|pay|paid|included|count|help|affect|go|work)\b")
_EN_ASK = re.compile(r"\b(i(?: want| wanna| need|'d like| would like| d like) to|i(?:'m| am| m| was) (?:wondering|trying to)|"
                     r"tell me|let me know|any idea|is it possible|help me|i have a question|quick question|"
                     r"need to|i need (?:a|an|the|my|some|help|proof|copy))\b")
_ZH_ASK = re.compile(r"[吗嘛呢么]|怎么|怎样|如何|什么|啥|哪|多少|多久|多长|几|为什么|为啥|能不能|可不可以|是不是|"
                     r"有没有|会不会|要不要|请问|想问|问一下|咨询|(.)[不没]\1|想|我要|帮我|麻烦|需要|一下")


def looks_like_question(text: str, lang: str) -> bool:
    """Does the utterance ask for something? English: a wh-word, an inverted auxiliary at
    the start ("can I ...", "is my ...") or after a statement ("... can you send a tow
    truck", "... is that covered"), a request ("I want to know", "I need to ...",
    "help me") or a question mark. Chinese: question particles and words (吗 呢 怎么 如何
    什么 哪 多少 能不能 是不是 请问 ...), A-not-A forms (赔不赔, 有没有) and requests
    (想, 我要, 帮我, 改一下). Callers' requests count: "I want to cancel my policy" needs the article too."""
    t = text.strip().lower().replace("\u2019", "'")
    if not t:
        return False
    if t.endswith(("?", "？")):
        return True
    if lang == "zh":
        return bool(_ZH_ASK.search(t))
    return bool(_EN_WH.search(t) or _EN_AUX.search(t) or _EN_AUX_MID.search(t) or _EN_ASK.search(t))
