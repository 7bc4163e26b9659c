"""The call summary a person would write, in the call's language, deterministic.

Three to six short lines: the customer's reason in their own words (the utterance
that made the call its type, or their first real request, cut to its core clauses),
what the agent did (steps done, articles pushed, offers made), key ticket facts, what
was promised and by when, and the outcome. Numbers in it are redacted like transcripts.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from ..assist.match import PhraseSet
from ..text import dominant_lang
from .extract import FieldValue
from .forms import TicketTemplate, text_in
from .record import CallRecord

_CLAUSES = re.compile(r"[^,.!?;，。！？；]+[,.!?;，。！？；]*")
_FILLER = re.compile(r"^\s*(yes|yeah|hi|hello|hey|good (morning|afternoon|evening)|oh|um+|uh+|well|so|okay|ok|right|"
                     r"thanks?( you)?|thank you|sorry|no|sure|喂|你好|您好|是的|是|对|嗯|好的|好|谢谢|啊|哦|那个)"
                     r"([\s,，.。!！]+|$)", re.I)
_MAX = {"en": 110, "zh": 45}
_LABELS = {
    "en": {"reason": "Reason", "did": "Agent", "steps": "steps", "articles": "articles", "offers": "offered",
           "facts": "Ticket", "promised": "Promised", "by": "by", "outcome": "Outcome", "missed": "missed",
           "no_words": "(no customer words recognised)"},
    "zh": {"reason": "来电原因", "did": "坐席处理", "steps": "步骤", "articles": "知识", "offers": "推荐",
           "facts": "工单", "promised": "承诺", "by": "截止", "outcome": "结果", "missed": "未完成",
           "no_words": "（未识别到客户语音）"},
}
_OUTCOME = {
    "en": {"resolved": "resolved in the call", "follow_up": "needs follow-up", "escalated": "escalated",
           "unresolved": "not resolved"},
    "zh": {"resolved": "已在通话中解决", "follow_up": "待跟进", "escalated": "已升级", "unresolved": "未解决"},
}
_SEP = {"en": ", ", "zh": "、"}
_SEMI = {"en": "; ", "zh": "；"}
_COLON = {"en": ": ", "zh": "："}
_FACT_TYPES = ("enum", "date", "money", "number")


def _condense(text: str, lang: str, cue: PhraseSet | None) -> str:
    clauses = [c.strip() for c in _CLAUSES.findall(text) if c.strip()]
    kept = []
    for c in clauses:
        core = _FILLER.sub("", c)
        while core != c and _FILLER.match(core):
            c, core = core, _FILLER.sub("", core)
        if len(re.sub(r"[\W_]", "", core)) >= (3 if lang == "zh" else 8):
            kept.append(core)
    if not kept:
        return ""
    start = 0
    whole = sum(len(c) + 1 for c in kept)
    if cue is not None and whole > _MAX[lang]:
        # too long for one line: from the clause that says what the call is about
        start = next((k for k, c in enumerate(kept) if cue.find(c)), 0)
    out = ""
    for c in kept[start:]:
        if out and len(out) + len(c) > _MAX[lang]:
            break
        out += ("" if not out or lang == "zh" else " ") + c
    out = out.strip()
    if len(out) > _MAX[lang]:
        out = out[: _MAX[lang]].rstrip() + "…"
    out = out.rstrip(",，;；")
    return out[:1].upper() + out[1:] if lang == "en" else out


def reason_utterance(record: CallRecord, cue: PhraseSet | None) -> Any:
    customer = [u for u in sorted(record.utterances, key=lambda u: u.t_start) if u.speaker == "customer"]
    if cue is not None:
        for u in customer[:6]:
            if cue.find(u.text):
                return u
    for u in customer[:4]:
        if len(_FILLER.sub("", u.text).split()) >= 4 or (dominant_lang(u.text) == "zh" and len(u.text) >= 6):
            return u
    return customer[0] if customer else None


def _short(title: str) -> str:
    """An article or offer title without its explanation: "Deductible (excess) – what it is" -> "Deductible"."""
    t = re.split(r"\s[–—-]\s|[（(：:]", title, maxsplit=1)[0].strip()
    return t or title


def summarise(record: CallRecord, lang: str, template: TicketTemplate | None, values: dict[str, FieldValue],
              reason_cue: PhraseSet | None, redact: Callable[[str], str], branch_steps: frozenset[str] = frozenset()) -> str:
    L = _LABELS[lang]
    sep, semi, colon = _SEP[lang], _SEMI[lang], _COLON[lang]
    lines = []
    u = reason_utterance(record, reason_cue)
    reason = _condense(redact(u.text), lang, reason_cue) if u is not None else ""
    q = ("“", "”") if lang == "zh" else ('"', '"')
    call_type = text_in(template.title, lang) if template is not None and not template.default else None
    head = f"{call_type}{colon}" if call_type else ""
    lines.append(f"{L['reason']}{colon}{head}{q[0]}{reason}{q[1]}" if reason else f"{L['reason']}{colon}{head}{L['no_words']}")
    did = []
    fl = record.flow
    if fl is not None and fl.steps:
        # the call type's own steps by name; the opening and closing ones only counted
        done = [s.title for s in fl.steps if s.done and s.id in branch_steps] or \
            [s.title for s in fl.steps if s.done][:4]
        n = sum(s.done for s in fl.steps)
        count = f" ({n}/{len(fl.steps)})" if lang == "en" else f"（{n}/{len(fl.steps)}）"
        if done:
            did.append((f"{L['steps']} " if lang == "en" else f"{L['steps']}：") + sep.join(done) + count)
    if record.knowledge:
        arts = sep.join(_short(p.title) for p in record.knowledge)
        did.append(f"{L['articles']} {arts}" if lang == "en" else f"{L['articles']}：{arts}")
    made = [_short(o.title) for o in record.offers if o.made_t is not None]
    if made:
        did.append(f"{L['offers']} " + sep.join(made) if lang == "en" else f"{L['offers']}：" + sep.join(made))
    if did:
        lines.append(f"{L['did']}{colon}" + semi.join(did))
    if template is not None:
        facts = []
        for f in template.fields:
            v = values.get(f.name)
            if v is None or v.value is None or f.type not in _FACT_TYPES or f.personal or \
                    f.name in ("resolution", "follow_up") or (f.name == "requested_action" and call_type):
                continue
            shown = v.value
            if f.type == "enum":
                opt = next((o for o in f.options if o.value == v.value), None)
                shown = text_in(opt.title, lang) if opt is not None and opt.title else v.value
            facts.append(f"{text_in(f.title, lang)} {shown}" if lang == "en" else f"{text_in(f.title, lang)}：{shown}")
        if facts:
            lines.append(f"{L['facts']}{colon}" + semi.join(facts[:4]))
    promise = values.get("follow_up")
    if promise is not None and promise.value:
        by = f" ({L['by']} {promise.due})" if promise.due and lang == "en" else (f"（{L['by']}{promise.due}）" if promise.due else "")
        lines.append(f"{L['promised']}{colon}{promise.value}{by}")
    res = values.get("resolution")
    outcome = _OUTCOME[lang].get(res.value) if res is not None and res.value else None
    missed = [s.title for s in fl.steps if not s.done] if fl is not None else []
    tail = []
    if outcome:
        tail.append(outcome)
    if missed:
        tail.append(f"{L['missed']} " + sep.join(missed[:3]) if lang == "en" else f"{L['missed']}：" + sep.join(missed[:3]))
    if tail:
        lines.append(f"{L['outcome']}{colon}" + semi.join(tail))
    return "\n".join(lines[:6])


def call_language(record: CallRecord) -> str:
    if record.lang in ("en", "zh"):
        return record.lang
    ivr = (record.ivr or {}).get("lang")
    if ivr in ("en", "zh"):
        return ivr
    text = " ".join(u.text for u in record.utterances)
    return dominant_lang(text) or "en"

