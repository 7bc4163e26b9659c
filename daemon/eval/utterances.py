"""Call-centre utterances, English and Chinese, from templates: the input of `callcue
bench embed`, and the calibration and held-out sentences of `callcue models convert
minilm-l6-v2`. Seeded: the same list for the same seed.
"""
from __future__ import annotations

import random

# ---------------------------------------------------------------- call-centre utterances

_EN_SLOTS = {
    "product": ["credit card", "mobile plan", "broadband", "savings account", "insurance policy", "debit card",
                "data package", "home loan", "online banking app", "router", "SIM card", "phone"],
    "problem": ["stopped working", "keeps dropping", "was blocked", "shows an error", "is very slow",
                "was charged twice", "cannot connect", "has no signal", "was never activated"],
    "when": ["yesterday", "last week", "Monday", "this morning", "three days ago", "the start of the month"],
    "amount": ["twenty dollars", "ninety nine dollars", "two hundred dollars", "fifteen euros", "a fee"],
    "bill": ["bill", "statement", "account", "invoice", "card"],
    "company": ["Horizon Telecom", "First City Bank", "Apex Insurance", "QuickShop"],
    "agent": ["Anna", "David", "Maria", "Kevin", "Lucy"],
    "duration": ["forty minutes", "two weeks", "an hour", "five days", "a month"],
    "id_item": ["date of birth", "account number", "postcode", "last four digits of the card", "full name"],
    "case": ["complaint", "refund", "repair request", "order", "transfer", "claim"],
    "topic": ["my refund", "the late fee", "this contract", "the way I was treated", "the cancellation"],
    "offer": ["a free upgrade", "ten percent off", "three months free", "a lower monthly rate", "double data"],
    "condition": ["renew today", "switch to paperless billing", "stay for another year", "add a second line"],
    "dept": ["billing", "technical support", "the fraud team", "claims", "our retention team"],
    "fix": ["escalate this today", "refund the charge", "send a technician tomorrow", "reset it right now"],
    "action": ["cancel", "upgrade", "close", "renew", "activate", "change the address on"],
}
_EN_TEMPLATES = [
    "I want to {action} my {product}",
    "My {product} {problem} since {when}",
    "Can you tell me why I was charged {amount} on my {bill}",
    "Thank you for calling {company}, my name is {agent}, how can I help you today",
    "I have been waiting {duration} and nobody has fixed my {product}",
    "Could you please confirm your {id_item} for me",
    "Let me check the status of your {case} right now",
    "I would like to speak to a supervisor about {topic}",
    "Is there any way to get a refund for the {product}",
    "We can offer you {offer} if you {condition}",
    "Please hold while I transfer you to {dept}",
    "I am sorry for the trouble, I will {fix}",
    "How do I reset the password for my {product}",
    "The {product} I ordered {when} still has not arrived",
    "Why does my {bill} show {amount} that I did not agree to",
    "I already called {duration} ago about my {case} and it is still open",
]
_EN_OPEN = ["", "", "", "Okay, ", "Well, ", "Hi, ", "Yes, ", "Sorry, "]
_EN_CLOSE = ["", "", "", ", please", ", thanks", " as soon as possible", ", is that possible"]

_ZH_SLOTS = {
    "product": ["信用卡", "手机套餐", "宽带", "储蓄账户", "保险", "流量包", "房贷", "手机银行", "路由器", "话费"],
    "problem": ["用不了", "一直断线", "被冻结了", "老是报错", "特别慢", "被重复扣款", "没有信号", "一直没开通"],
    "when": ["昨天", "上周", "周一", "今天早上", "三天前", "月初"],
    "amount": ["二十块", "九十九元", "两百块钱", "一笔手续费", "五十元"],
    "bill": ["账单", "话费", "月费", "信用卡账单"],
    "company": ["华信电信", "城市银行", "安达保险", "快购商城"],
    "id_item": ["身份证号", "预留手机号", "卡号后四位", "账户名", "出生日期"],
    "duration": ["四十分钟", "两个星期", "一个小时", "五天", "一个月"],
    "dept": ["账务部门", "技术支持", "反诈中心", "理赔部门", "客户维护组"],
    "offer": ["免费升级", "九折优惠", "三个月免月租", "更低的月费", "双倍流量"],
    "condition": ["今天续约", "开通电子账单", "再签一年", "加办一张副卡"],
    "action": ["取消", "升级", "注销", "续费", "开通", "变更"],
    "case": ["投诉", "退款", "维修单", "订单", "转账", "理赔"],
}
_ZH_TEMPLATES = [
    "我想{action}我的{product}",
    "我的{product}从{when}开始就{problem}",
    "为什么我这个月的{bill}多扣了{amount}",
    "您好，这里是{company}客服中心，请问有什么可以帮您",
    "请您提供一下{id_item}，我帮您核实一下",
    "我已经等了{duration}了，{case}还是没有处理",
    "我要投诉，你们{dept}的态度太差了",
    "麻烦帮我查一下{case}现在是什么进度",
    "现在办理可以享受{offer}，只要您{condition}",
    "请稍等，我帮您转接到{dept}",
    "非常抱歉给您带来不便，我们会尽快处理您的{case}",
    "我想{action}{product}，应该怎么操作",
    "我{when}打过电话了，{product}还是{problem}",
    "这个{amount}是什么费用，我没有同意过",
]
_ZH_OPEN = ["", "", "", "嗯，", "喂，", "那个，", "您好，", "是这样的，"]
_ZH_CLOSE = ["", "", "", "，谢谢", "，好吗", "，麻烦快一点", "，可以吗"]


def _fill(rng: random.Random, template: str, slots: dict[str, list[str]]) -> str:
    return template.format(**{k: rng.choice(v) for k, v in slots.items() if "{" + k + "}" in template})


def utterances(n: int, seed: int = 0, zh_share: float = 0.5, exclude: set[str] | frozenset[str] = frozenset()
               ) -> list[str]:
    """``n`` distinct call-centre utterances, English and Chinese (about ``zh_share`` of
    them), 4-25 words each, none of them in ``exclude``; the same list for the same seed."""
    rng = random.Random(seed)
    out: list[str] = []
    seen = set(exclude)
    n_zh = round(n * zh_share)
    for lang, count in (("en", n - n_zh), ("zh", n_zh)):
        made = 0
        for _ in range(count * 200):
            if made == count:
                break
            if lang == "en":
                body = _fill(rng, rng.choice(_EN_TEMPLATES), _EN_SLOTS)
                opener = rng.choice(_EN_OPEN)
                if opener and not body.startswith(("I ", "I'")):
                    body = body[0].lower() + body[1:]
                close = rng.choice(_EN_CLOSE)
                question = body.split()[0].lower() in ("can", "could", "is", "how", "why") or close.endswith("possible")
                s = opener + body + close + ("?" if question else ".")
            else:
                s = rng.choice(_ZH_OPEN) + _fill(rng, rng.choice(_ZH_TEMPLATES), _ZH_SLOTS) + rng.choice(_ZH_CLOSE)
                s += "？" if s.endswith(("吗", "吧")) or "什么" in s or "怎么" in s or "为什么" in s else "。"
            if s not in seen:
                seen.add(s)
                out.append(s)
                made += 1
        if made < count:
            raise ValueError(f"the templates give only {made} distinct {lang} utterances for seed {seed}, "
                             f"{count} were asked for")
    rng.shuffle(out)
    return out
