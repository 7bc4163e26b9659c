"""Call type: which ticket template files the call, scored from all the call's evidence.

The customer's own words decide most. Each utterance is scored against every call type
by a word / character n-gram model (ngrams.py) learned from the pack: each template's
`for.examples` (how customers say why they call), `for.phrases`, its branches' intent
phrases, the questions and titles of its knowledge articles (`for.knowledge`), the
`requested_action` options that file as it, its own fields' cues and enum options (an
incident's "dented", a reason to cancel "sold my car") and, for what the agent says, its
branches' step keywords and examples. English: stems and pairs of stems; Chinese:
characters, pairs of characters and pairs of their toned readings; so a new wording ("the
hail storm on Sunday", 进了小偷) still meets its type's words. The words of any call
(greeting, identity check, closing, the common fields' cues, the default template's own
questions) are a background that votes for nothing. Within an utterance a clause that
asks for something ("..., so I'd like to cancel", 想退了) counts REQUEST_BOOST times the
story around it. The pack's phrases matched as phrases (error-tolerant) add to their
type's votes; with the English sentence embedder (optional: the vectors the assist engine
computed live for the customer's first utterances come with the record, nothing is
encoded at call end) each type's nearest example requests vote too.

Position: the customer's opening request counts most, then the agent's restatement of it
(its first or second turn after), later customer words less and less, the agent's other
words little. Then added: the IVR intent (what the customer chose before the call:
strong), the flow branch (itself taken from the first intent phrase heard, or the agent's
first step of a branch: weak), articles pushed and each type's branch steps done (the
flow's and those found again in what was said, steps.py: weak), and a type's branch step
the agent says it has done, in a clause that says so ("I've registered the claim", 已经
给您登记报案了: AGENT_DID, about as strong as the opening request: what the agent did is
what the call was, however the customer's story sounded).

The decision is margin-aware: a call whose best type has too little evidence, or hardly
more than the runner-up, is filed with the default (general) template and no call type,
since a wrong template files the wrong fields (and a wrong requested_action). Pure and
fast: the model is built once per content version; a call costs a few milliseconds.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..assist.match import Heard, PhraseSet
from ..text import has_cjk
from .extract import says_done_clauses, with_contractions, without_aspect
from .forms import TicketTemplate, phrases_of
from .ngrams import BACKGROUND, LATE, OPENING, Votes, share_out, terms
from .record import CallRecord, Step
from .steps import BranchSteps

log = logging.getLogger(__name__)

# weights of what teaches the model (a document = one sentence or phrase)
W_EXAMPLE = 1.0             # for.examples, for.phrases, branch intents, requested_action phrases
W_ARTICLE = 0.8             # questions and titles of the type's knowledge articles
W_OPTION = 0.5              # the template's own enum options (cancel reason "sold my car")
W_AGENT = 0.4               # branch step keywords and examples (the agent's words in such a call)

# position: the customer's utterances that carry evidence weigh ngrams.OPENING, then LATE each
RESTATE = 0.5               # the agent's first or second turn after the opening request, when it says something of a type
RESTATE_MIN = 0.4           # ... at least this much
AGENT_EARLY = 0.3           # the agent's words before the customer says anything that counts (outbound calls)
AGENT_OTHER = 0.08          # the agent's other words, each ...
AGENT_OTHER_MAX = 0.25      # ... and all together

PHRASE_OWN = 1.0            # a template phrase matched as a phrase: votes added
PHRASE_INTENT = 0.6         # a branch intent phrase
EMBED_VOTE = 2.0            # the embedder's nearest examples (English, optional)
EMBED_MIN = 0.40            # cosine under which an example says nothing
EMBED_K = 3                 # a type's nearest examples averaged

REQUEST_BOOST = 1.5         # a clause that asks for something, against one that tells the story
_CLAUSE = re.compile(r"[^,;.!?，；。！？]+[,;.!?，；。！？]*")
_ASK_EN = re.compile(r"\b(?:want|wanna|would like|i'?d like|wish|need|looking to|trying to|hoping to|can you|could you|"
                     r"can i|could i|please|how do i|how can i|calling to|ringing to|phoning to|calling about|"
                     r"ringing about|like to)\b")
_ASK_ZH = re.compile(r"想|要|希望|麻烦|帮我|能不能|可不可以|怎么|请")

IVR = 2.0                   # the IVR intent's template
BRANCH = 0.4                # the flow branch chosen by the customer's first intent phrase
BRANCH_AGENT = 0.1          # ... or by the agent's first step of a branch (asking for a number fits several)
ARTICLE_PUSHED = 0.2        # per article pushed (at most 2 per type)
STEP_DONE = 0.1             # per step of a type's branch done (the flow's, or found again in what was said) ...
STEPS_MAX = 3               # ... at most this many per type

AGENT_DID = 1.0             # the agent saying it has done a step of a type's branch ("I've opened the claim"), once per type
MIN_EVIDENCE = 0.35         # less than this for the best type: no call type
MIN_MARGIN = 0.12           # (best - runner-up) / best under this: no call type


@dataclass(frozen=True, slots=True)
class CallType:
    template: TicketTemplate | None
    call_type: str | None           # template id; None when no template fits
    confidence: float
    by: str                         # ivr | customer | branch | default | none
    scores: dict[str, float] = field(default_factory=dict)     # evidence per type
    steps: tuple[Step, ...] = ()    # every branch's steps done (the flow's and those found again in what was said)


class Classifier:
    def __init__(self, templates: list[TicketTemplate], flows: list = (), articles: list = (),
                 encoder: Callable[[list[str]], np.ndarray] | None = None):
        """`templates`: the pack's usable templates; `flows`: its flows (pack.flows);
        `articles`: its knowledge articles (knowledge.load_articles); `encoder`: the
        English sentence embedder's encode (optional)."""
        self.templates = [t for t in templates if not t.abstract]
        self.default = next((t for t in self.templates if t.default), None)
        self.by_id = {t.id: t for t in self.templates}
        # the default template is no type of its own: what fits no type falls back to it
        self.types = [t.id for t in self.templates if not t.default]
        self.col = {t: i for i, t in enumerate(self.types)}
        docs: list[tuple[str, str, float]] = []           # (type, text, weight), customer's words
        agent_docs: list[tuple[str, str, float]] = []
        pairs = []
        self.steps: dict[str, str] = {}                   # branch step id -> template id
        self.branch_of: dict[str, str] = {}               # branch id -> template id
        by_topic: dict[str, list] = {}
        for a in articles:
            by_topic.setdefault(a.topic, []).append(a)
        own_fields = self._own_fields()
        for t in self.templates:
            if t.default:
                # its questions (proof of insurance, the excess) are words any call may hold
                agent_docs += [(BACKGROUND, p, 1.0) for p in [*phrases_of(t.calls.phrases),
                                                            *phrases_of(t.calls.examples)]]
                agent_docs += [(BACKGROUND, q, 1.0) for topic in t.calls.knowledge
                               for a in by_topic.get(topic, ()) for q in (a.title, *a.questions)]
                continue
            own = phrases_of(t.calls.phrases)
            docs += [(t.id, p, W_EXAMPLE) for p in [*own, *phrases_of(t.calls.examples)]]
            intents = []
            for f in flows:
                for b in f.branches:
                    if b.id in t.calls.branches:
                        self.branch_of[b.id] = t.id
                        intents += [p for p in b.intent if p not in own]
                        for st in b.steps:
                            self.steps[st.id] = t.id
                            agent_docs += [(t.id, p, W_AGENT) for p in [*st.keywords, *st.examples]]
            docs += [(t.id, p, W_EXAMPLE) for p in intents]
            for topic in t.calls.knowledge:
                for a in by_topic.get(topic, ()):
                    docs += [(t.id, q, W_ARTICLE) for q in (a.title, *a.questions)]
            for f in t.fields:
                if f.name in own_fields.get(t.id, ()):
                    # the type's own fields: the words said next to them ("dented", "stolen" by
                    # an incident date), their options ("sold my car" as a reason to cancel)
                    docs += [(t.id, p, W_OPTION) for p in phrases_of(f.cues)]
                for o in f.options:
                    if f.name in own_fields.get(t.id, ()):
                        docs += [(t.id, p, W_OPTION) for p in phrases_of(o.phrases)]
                    # an option that files as this type (requested_action "cancel" -> cancellation)
                    if t.id in o.call_types or set(o.branches) & set(t.calls.branches):
                        docs += [(t.id, p, W_EXAMPLE) for p in phrases_of(o.phrases)]
            pairs += [(v, (t.id, PHRASE_OWN)) for v in with_contractions(list(dict.fromkeys(own)))]
            pairs += [(v, (t.id, PHRASE_INTENT)) for v in with_contractions(list(dict.fromkeys(intents)))]
        for f in flows:
            for st in [*f.steps, *f.closing]:
                agent_docs += [(BACKGROUND, p, 1.0) for p in [*st.keywords, *st.examples, st.script] if p]
        if self.default is not None:
            for f in self.default.fields:
                if f.name != "requested_action":
                    agent_docs += [(BACKGROUND, p, 1.0) for p in [*phrases_of(f.cues), *phrases_of(f.not_cues),
                                                                 *(q for o in f.options for q in phrases_of(o.phrases))]]
        self.words = {lang: Votes(self.types, [d for d in docs + agent_docs if has_cjk(d[1]) == (lang == "zh")])
                      for lang in ("en", "zh")}
        self.phrases = PhraseSet(pairs) if pairs else None
        self.topics = {k: t.id for t in self.templates if not t.default for k in t.calls.knowledge}
        self.ivr = {i: t.id for t in self.templates if not t.default for i in t.calls.ivr}
        self.respot = BranchSteps(flows)
        self.all_branches = sorted(self.branch_of)
        # the English embedder (optional): the customer-side English examples, one vector each;
        # the call's own vectors come with the record (the assist engine computed them live)
        self.example_vecs: np.ndarray | None = None
        self.example_type = np.zeros(0, dtype=int)
        if encoder is not None:
            en = [(tid, txt) for tid, txt, _ in docs if not has_cjk(txt) and len(txt.split()) >= 3]
            try:
                vecs = [encoder([txt for _, txt in en[i:i + 32]]) for i in range(0, len(en), 32)]
                self.example_vecs = np.concatenate(vecs).astype(np.float32) if vecs else None
                self.example_type = np.array([self.col[tid] for tid, _ in en], dtype=int)
            except Exception as exc:     # a broken model: the words alone decide
                log.warning("after-call call type: sentence embeddings off (%s)", exc)
                self.example_vecs = None

    def _own_fields(self) -> dict[str, set[str]]:
        """Per template, its enum fields that the default template lacks (its own words)."""
        base = {f.name for f in self.default.fields} if self.default is not None else set()
        return {t.id: {f.name for f in t.fields if f.name not in base} for t in self.templates}

    # ---------------------------------------------------------------- scoring

    def utterance_votes(self, text: str, heard: Callable[[str], Heard] = Heard.of) -> np.ndarray:
        """Votes of one utterance for each type: its clauses' n-grams, a clause that asks for
        something ("so I'd like to cancel", 想改一下) REQUEST_BOOST times, and the pack's
        phrases matched as phrases."""
        zh = has_cjk(text)
        ask = _ASK_ZH if zh else _ASK_EN
        boost: dict[str, float] = {}            # each term once, at its clause's weight
        for m in _CLAUSE.finditer(text):
            clause = m.group(0)
            b = REQUEST_BOOST if ask.search(clause.lower()) else 1.0
            for t in terms(clause):
                boost[t] = max(boost.get(t, 0.0), b)
        v = self.words["zh" if zh else "en"].votes_of(boost)
        if self.phrases is not None:
            got: dict[str, float] = {}
            found = self.phrases.find(heard(text))
            bare = without_aspect(text)
            if bare != text:            # 换了新车 also as 换新车
                found += self.phrases.find(bare)
            for f in found:
                tid, w = f.item
                got[tid] = max(got.get(tid, 0.0), w)
            for tid, w in got.items():
                v[self.col[tid]] += w
        return v

    def embed_votes(self, vec) -> np.ndarray | None:
        """Votes of an utterance's sentence vector: each type's three nearest examples,
        how far their mean cosine is above EMBED_MIN."""
        if self.example_vecs is None or vec is None:
            return None
        vec = np.asarray(vec, dtype=np.float32).reshape(-1)
        if vec.shape[0] != self.example_vecs.shape[1]:
            return None
        sims = self.example_vecs @ vec
        v = np.zeros(len(self.types))
        for c in range(len(self.types)):
            mine = sims[self.example_type == c]
            if mine.size:
                v[c] = max(0.0, float(np.sort(mine)[-int(EMBED_K):].mean()) - EMBED_MIN)
        return EMBED_VOTE * v / (1.0 - EMBED_MIN)

    def branch_steps(self, record: CallRecord, heard: Callable[[str], Heard] = Heard.of) -> list[Step]:
        """Every branch's steps done in the call: the flow's (it followed one branch) and those
        found again in what was said (steps.py)."""
        fl = record.flow
        out = [st for st in (fl.steps if fl else ()) if st.done and st.id in self.steps]
        have = {st.id for st in out}
        lang = record.lang if record.lang in ("en", "zh") else (fl.lang if fl is not None else None)
        return out + [st for st in self.respot.done(record, self.all_branches, lang, heard) if st.id not in have]

    def evidence(self, record: CallRecord, heard: Callable[[str], Heard] = Heard.of,
                 steps: list[Step] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(everything, words only) per type, before the decision."""
        if steps is None:
            steps = self.branch_steps(record, heard)
        said = sorted(record.utterances, key=lambda u: (u.t_start, u.t_end))
        embed = self.example_vecs is not None and bool(record.vectors)
        words = np.zeros(len(self.types))
        k = 0                           # customer utterances that said something of a type
        opened = False
        restated = False
        agent_other = 0.0
        agent_turns = 0                 # the agent's turns after the opening request (a restatement is in the first two)
        for u in said:
            customer = u.speaker == "customer"
            if not customer and opened and (restated or agent_turns >= 2) and agent_other >= AGENT_OTHER_MAX:
                continue                # the agent's words have had their say
            v = self.utterance_votes(u.text, heard)
            if embed and customer:
                ev = self.embed_votes(record.vectors.get(round(u.t_start, 2)))
                if ev is not None:
                    v = v + ev
            total = float(v.sum())
            if total <= 0.0:
                continue
            if customer:
                w = OPENING[k] if k < len(OPENING) else LATE
                k += 1
                opened = True
            elif opened and not restated and agent_turns < 2:
                agent_turns += 1
                if total < RESTATE_MIN:
                    continue            # asking for the policy number restates nothing
                w, restated = RESTATE, True
            elif not opened:
                w = AGENT_EARLY
            else:
                w = min(AGENT_OTHER, AGENT_OTHER_MAX - agent_other)
                agent_other += w
            words += share_out(v, w)
        score = words.copy()
        intent = record.ivr_intent
        if intent and intent in self.ivr:
            score[self.col[self.ivr[intent]]] += IVR
        fl = record.flow
        if fl is not None and fl.branch and fl.branch_by != "ivr" and fl.branch in self.branch_of:
            score[self.col[self.branch_of[fl.branch]]] += BRANCH if fl.branch_by == "customer" else BRANCH_AGENT
        pushed: Counter = Counter()
        for p in record.knowledge:
            tid = self.topics.get(p.topic)
            if tid is not None and pushed[tid] < 2:
                pushed[tid] += 1
                score[self.col[tid]] += ARTICLE_PUSHED
        for tid in self.agent_did(said, heard):
            score[self.col[tid]] += AGENT_DID
        done: Counter = Counter()
        for sid in {st.id for st in steps}:
            tid = self.steps.get(sid)
            if tid is not None and done[tid] < STEPS_MAX:
                done[tid] += 1
                score[self.col[tid]] += STEP_DONE
        return score, words

    def agent_did(self, said: list, heard: Callable[[str], Heard] = Heard.of) -> set[str]:
        """Types one of whose branch steps the agent says is done, in a clause that says so
        ("I've opened the claim, your claim reference is ..." is a claim report's step done,
        not a claim status's question for the reference; 已经给您登记报案了). What the agent
        did is what the call was: this weighs about as much as the opening request."""
        kw = self.respot.keywords
        out: set[str] = set()
        if kw is None:
            return out
        for u in said:
            if u.speaker != "agent":
                continue
            for clause in says_done_clauses(u.text):
                for f in kw.find(heard(clause)):
                    tid = self.steps.get(f.item)
                    if tid is not None:
                        out.add(tid)
        return out

    def classify(self, record: CallRecord, heard: Callable[[str], Heard] = Heard.of) -> CallType:
        if not self.types:
            if self.default is not None:
                return CallType(self.default, None, 0.0, "default")
            return CallType(None, None, 0.0, "none")
        steps = tuple(self.branch_steps(record, heard))
        score, words = self.evidence(record, heard, list(steps))
        scores = {t: round(float(s), 3) for t, s in zip(self.types, score)}
        order = np.argsort(-score, kind="stable")
        best = int(order[0])
        s1 = float(score[best])
        s2 = float(score[order[1]]) if len(order) > 1 else 0.0
        margin = (s1 - s2) / s1 if s1 > 0 else 0.0
        t = self.by_id[self.types[best]]
        if s1 < MIN_EVIDENCE or margin < MIN_MARGIN:
            if self.default is not None:
                return CallType(self.default, None, 0.0, "default", scores, steps)
            return CallType(None, None, 0.0, "none", scores, steps)
        intent = record.ivr_intent
        fl = record.flow
        if intent and self.ivr.get(intent) == t.id:
            by = "ivr"
        elif words[best] >= 0.5 * s1:
            by = "customer"
        elif fl is not None and fl.branch and self.branch_of.get(fl.branch) == t.id:
            by = "branch"
        else:
            by = "customer"
        conf = min(0.95, 0.5 + 0.45 * margin * min(1.0, s1))
        return CallType(t, t.id, round(conf, 2), by, scores, steps)
