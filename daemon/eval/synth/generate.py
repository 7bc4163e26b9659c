"""Seeded random insurance calls for a labelled corpus.

Most calls open calmly (both parties speak normally for a while, so a detector can
learn each voice's baseline), then mix in long silences, talk-overs, fast agent
turns and agitated turns, plus hard negatives (short gaps and short overlaps, normal
speed and pitch variation). The customer's mood varies by call: calm at first, agitated
from the first word for a few turns (`angry_open`), agitated through the whole first
minute or more (`angry_long`), or calm until agitated at the end (`angry_end`). Voices
vary too: a party may be naturally loud, high-pitched, both, or (customers) fast while
calm, and one channel of the line may be set hotter or quieter than the other. Turn
lengths are planned from the syllable rates measured on espeak-ng; the truth labels are
derived later from the rendered audio, so a planning error can change a call but never
makes its labels wrong.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from ...text import syllables
from .script import BASE_VOICE, CallScript, EspeakParams, Turn, VoiceSettings

# Planning rates: syllables (as counted by daemon/text.py `syllables`, the count the
# fast_speech detector uses on transcripts) per second of trimmed espeak-ng
# speech, pauses included, by -s setting; calibrated on these phrase banks.
_RATE_TABLE = {
    "en": ((150, 4.0), (175, 4.65), (250, 6.9), (300, 8.6), (350, 10.3), (400, 11.6), (450, 13.0)),
    "zh": ((150, 3.10), (175, 3.70), (250, 5.65), (300, 7.02), (350, 8.08), (400, 9.31), (450, 9.47)),
}
NORMAL_SPEED = {"en": (140, 190), "zh": (160, 215)}
BASE_SPEED = {"en": (150, 180), "zh": (170, 205)}
FAST_SPEED = {"en": (300, 400), "zh": (330, 400)}   # zh saturates near 400 (9.3 syl/s)
BASE_PITCH = (35, 55)
AGITATED_PITCH_RAISE = (25, 45)
NORMAL_AMPLITUDE = (80, 110)
AGITATED_AMPLITUDE = (160, 200)
SILENCE_GAP = (5.5, 10.0)
TALK_OVER = (1.3, 3.0)
SHORT_GAP = (0.3, 3.0)
SHORT_OVERLAP = (0.1, 0.5)
CALL_LENGTH = (60.0, 105.0)   # planned; realized lengths land in 60-120 s
MAX_CALL_S = 108.0
BASELINE_S = 7.0              # planned normal speech per party before any agitated turn (>= ~6 s real)
MIN_EVENT_TURN_S = 3.0        # planned length of fast / agitated turns (>= ~2.5 s real)

# Agitation moves several cues at once (pitch above, with AGITATED_PITCH_RAISE and
# AGITATED_AMPLITUDE): a wider pitch range, more vocal effort (energy above 1 kHz) and a
# quicker pace. Calm voices vary in range and effort too, less.
NORMAL_RANGE = (40, 60)
NORMAL_EFFORT = (0.0, 2.0)
AGITATED_RANGE_RAISE = (20, 40)
AGITATED_EFFORT_RAISE = (6.0, 11.0)
AGITATED_SPEED_FACTOR = (1.0, 1.15)
# The customer's mood over the call (drawn per call), and calm voice variants per party:
# loud (a strong voice: louder and a little more effort), high (a high voice in a normal,
# slightly narrower range), both, or fast (customers only: the agent's fast speech is an alert).
MOODS = (("calm_open", 0.45), ("angry_open", 0.2), ("angry_long", 0.15), ("angry_end", 0.2))
ANGRY_OPEN_TURNS = (2, 4)     # customer turns agitated from the first word
ANGRY_LONG_S = (60.0, 80.0)   # planned call time the customer stays agitated, from the first word
VARIANTS = {"customer": (("plain", 0.55), ("loud", 0.15), ("high", 0.13), ("loud_high", 0.07), ("fast", 0.10)),
            "agent": (("plain", 0.75), ("loud", 0.10), ("high", 0.10), ("loud_high", 0.05))}
LOUD_AMPLITUDE = (150, 190)
LOUD_EFFORT = (0.5, 2.5)
HIGH_PITCH = (70, 88)
HIGH_RANGE = (35, 50)
CALM_FAST_SPEED = {"en": (215, 250), "zh": (230, 265)}
AGITATED_APART_S = 2.0        # a party's consecutive agitated turns (the detector joins episodes < 1.5 s apart)
GAIN_MISMATCH_P = 0.3         # calls whose two channels differ in gain
GAIN_MISMATCH_DB = (3.0, 9.0)


def estimate_seconds(text: str, language: str, speed: int) -> float:
    """Planned seconds of espeak-ng speech for ``text`` at ``speed`` (-s)."""
    xs, ys = zip(*_RATE_TABLE[language])
    return syllables(text) / float(np.interp(speed, xs, ys))


# ---- phrase banks ------------------------------------------------------------------
# {slots} are filled per call. Banks by role; topic banks by claims / policy / billing.

EN = {
    "company": ["Harbor Mutual", "Northgate Insurance", "Evergreen Assurance", "Summit Shield Insurance"],
    "agent_name": ["Daniel", "Maria", "Kevin", "Priya", "Thomas", "Grace"],
    "cust_name": ["John Miller", "Sarah Collins", "David Nguyen", "Emily Carter", "Robert Hayes", "Linda Park"],
    "dob": ["twelfth of May, nineteen eighty four", "third of October, nineteen seventy nine",
            "twenty first of June, nineteen ninety", "ninth of February, nineteen sixty eight"],
    "policy": ["H M 4 7 2 9 1", "N G 8 0 3 5 6", "E A 2 2 9 1 4", "S S 6 1 8 0 7"],
    "amount": ["two hundred and forty dollars", "one thousand eight hundred dollars", "ninety five dollars",
               "three thousand two hundred dollars", "five hundred dollars"],
    "greeting": [
        "Thank you for calling {company}, my name is {agent}. How can I help you today?",
        "Good morning, you are through to {company} customer care, this is {agent} speaking. What can I do for you?",
        "Hello, and thanks for calling {company}. My name is {agent}, how may I help you?",
    ],
    "reason": {
        "claims": ["Hi, I am calling about the claim I made for my car after the accident last month.",
                   "Hello, I filed a water damage claim two weeks ago and I wanted to check where it stands.",
                   "Hi there, I need an update on my claim, the repair shop keeps asking me about it."],
        "policy": ["Hi, I have a few questions about my home insurance policy before it renews.",
                   "Hello, I would like to add my daughter as a driver on my car policy.",
                   "Hi, I am moving house next month and I am not sure what happens to my policy."],
        "billing": ["Hi, I am calling because I was charged twice for my premium this month.",
                    "Hello, my direct debit failed and I received a letter about a late payment.",
                    "Hi, I wanted to ask why my monthly payment went up so much this year."],
    },
    "id_request": [
        "I can help you with that. Could I have your full name and your policy number, please?",
        "Sure, I will look into it. First, can you give me the policy number and the name on the policy?",
    ],
    "id_answer": [
        "Yes, my name is {cust}, and the policy number is {policy}.",
        "Of course. It is {cust}, and the policy number should be {policy}.",
    ],
    "security": [
        "Thank you. And for security, could you confirm your date of birth for me?",
        "Thanks for that. Just to confirm it is you, what is your date of birth?",
    ],
    "security_answer": [
        "Sure, it is the {dob}.",
        "It is the {dob}, and I live at the address on the policy.",
    ],
    "verified": [
        "Thank you, you are verified. Let me bring up your account and take a look.",
        "Great, thanks, that all matches. I have your account open in front of me now.",
    ],
    "question": {
        "claims": ["When will I actually get paid for the repairs on my car?",
                   "Has the adjuster looked at the photos I uploaded yet?",
                   "Do I need to get more quotes from repair shops, or is one enough?",
                   "Can I choose my own garage for the repairs, or do I have to use yours?",
                   "Do you cover a rental car while mine is in the shop?",
                   "Will this claim make my premium go up next year?",
                   "What documents do you still need from me to close the claim?"],
        "policy": ["Does my policy cover damage from a burst pipe?",
                   "How much would it cost to add another driver to the policy?",
                   "If I move, do I need to take out a completely new policy?",
                   "What is the deductible on my home contents cover?",
                   "Is my laptop covered if it gets stolen from my car?",
                   "Can I change the renewal date to the start of the month?"],
        "billing": ["Can you tell me why I was charged twice this month?",
                    "When will the extra payment be refunded to my card?",
                    "Is there a late fee because the direct debit failed?",
                    "Can I switch from monthly payments to paying once a year?",
                    "Why did my premium go up when I have not made any claims?",
                    "Can I change the bank account the payments come from?"],
    },
    "answer": {
        "claims": ["The adjuster approved the estimate yesterday, so the payment of {amount} should reach you within five business days.",
                   "Yes, the photos were reviewed on Tuesday and everything looks fine, nothing more is needed from you.",
                   "One quote is enough in your case, because the damage is below the inspection limit.",
                   "You can use any licensed garage you like, just send us the invoice when the work is done.",
                   "Your policy includes a rental car for up to fourteen days while the repairs are carried out.",
                   "A claim where you were not at fault does not affect your no claims discount."],
        "policy": ["Yes, sudden water damage from a burst pipe is covered, but slow leaks over time are not.",
                   "Adding a second driver would cost about {amount} a year, depending on their driving history.",
                   "You can keep the same policy, we just need the new address and the date of the move.",
                   "The deductible on your contents cover is {amount} for each claim.",
                   "Items stolen from a locked car are covered up to one thousand dollars under your policy.",
                   "I can move the renewal date for you, and the difference in premium will be adjusted."],
        "billing": ["I can see the duplicate payment of {amount}, and I have already requested the refund.",
                    "Refunds usually take three to five working days to show up on your statement.",
                    "There is no late fee this time, I have waived it because it was the first missed payment.",
                    "Yes, you can pay annually, and that would actually save you about five percent.",
                    "The increase is mostly because rebuilding costs in your area went up this year.",
                    "Of course, I can send you a secure link to update the bank details."],
    },
    "long_explanation": [
        "So what happens next is that the adjuster reviews the repair estimate, then the claims team checks it against your cover, and once that is approved we pay the garage directly, which normally takes about a week.",
        "Let me explain how the renewal works. About a month before the end date we send you the new price, and if you do nothing the policy renews automatically and the first payment is taken on the same day of the month.",
        "What I can see here is that the first payment went through on the first of the month, and then the system tried again on the third because of a bank error, which is why there are two payments on your statement.",
    ],
    "ask_story": ["Okay, can you tell me what happened, from the beginning?",
                  "I see. And what exactly happened, can you walk me through it?"],
    "cust_long_story": [
        "Well, it all started when the pipe under the kitchen sink burst while we were away for the weekend, and when we came back the whole floor was soaked and the cabinets were completely ruined.",
        "So I was driving home from work on the motorway, and the car in front of me braked really suddenly, and I could not stop in time, and then the car behind me also hit me from the back.",
        "The thing is, I changed banks in March, and I told someone on the phone about it back then, but I am not sure if they ever updated it, because I never got any letter confirming it.",
    ],
    "cust_interrupt": [
        "Sorry, sorry, but that is not what I asked, I just need to know when the money will arrive.",
        "Hang on, hang on, nobody told me any of this when I called last time, why am I only hearing it now?",
        "Wait, excuse me, I already sent all of those documents, so why is it still not done?",
    ],
    "agent_interrupt": [
        "Sorry to cut in there, but could I just get the claim reference first, so I can find the right file?",
        "Let me stop you for a second, I just need to know the date when this happened, please.",
        "Sorry to interrupt, I only need the last four digits of the account before we go any further.",
    ],
    "after_agent_interrupt": [
        "Oh, sure, it was on the fourteenth of last month.",
        "Right, of course, the reference is C L 5 5 2 1.",
        "Okay, the last four digits are seven three nine two.",
    ],
    "after_cust_interrupt": [
        "I am sorry, you are right. The payment will be sent by Friday at the latest.",
        "I understand, and I apologize for that. Let me make sure it is finished today.",
    ],
    "fast": [
        "Please note that any change to your cover takes effect at midnight on the renewal date, that the deductible applies to each separate claim, and that if you cancel within fourteen days you get a full refund of the premium.",
        "Under section four of your policy, accidental damage is covered up to the sum insured, minus the deductible, provided that the damage is reported within thirty days and that you have taken reasonable care to prevent it.",
        "Just so you know, this call is recorded for training and quality purposes, your data is processed under our privacy notice, and you can ask for a copy of it at any time by writing to our data protection officer.",
        "The refund will go back to the card you paid with, it can take up to ten working days depending on your bank, and you will receive an email confirmation as soon as it has been processed on our side.",
    ],
    "cust_agitated": [
        "This is the third time I am calling about this, and every single time someone promises to call me back and nobody ever does!",
        "I have been paying you people for twelve years and the one time I need you, you tell me it is not covered? That is unbelievable!",
        "No, I am not waiting another two weeks, I need my car now, I cannot even get to work without it!",
        "You took the money twice from my account and now I cannot pay my rent, do you understand how serious that is?",
    ],
    "cust_angry_open": {
        "claims": ["I have been waiting three weeks for someone to call me back about my claim, and nobody ever does!",
                   "My car has been sitting in the garage for a month and you still have not paid a single cent!",
                   "I filed this claim two weeks ago and every time I call I get a different answer, what is going on?"],
        "policy": ["I just found out my policy does not cover what your salesman promised me, and I want to know why!",
                   "Why did you cancel my policy without even telling me? I only found out when I needed it!",
                   "I have asked three times to add my daughter to the policy and it is still not done!"],
        "billing": ["You took the premium twice from my account this month and nobody has even said sorry!",
                    "I keep getting letters about a late payment that I already made, this is ridiculous!",
                    "My payment went up by forty percent and nobody told me why, I want an explanation now!"],
    },
    "cust_angry_close": ["No. Just make sure somebody actually calls me back this time!",
                         "No, that is all, and I expect this to be fixed by tomorrow!",
                         "No. I just hope I never have to call you about this again!"],
    "angry_tail": ["And I have told you all of this before!", "Why is this so difficult?",
                   "I have already given you all of this twice!", "Just get on with it, please!",
                   "I do not have all day for this!"],
    "agent_agitated": [
        "Sir, I have already explained this three times, the policy does not cover flood damage, and there is nothing else I can do about it!",
        "I am trying to help you, but you keep interrupting me, so please just let me finish what I am saying!",
        "Look, I cannot change the decision of the claims team, no matter how many times you ask me the same question!",
    ],
    "agent_calm_after": [
        "I completely understand your frustration, and I am sorry about this. Let me see what I can do right now.",
        "I hear you, and I am sorry it has taken this long. I am going to escalate it to my supervisor today.",
    ],
    "cust_after_agent_agitated": [
        "Okay, okay, there is no need to raise your voice with me.",
        "Fine. Then I would like to make a formal complaint, please.",
    ],
    "hold": ["Let me check that in the system for you, one moment please.",
             "Bear with me while I look that up, it will only take a moment."],
    "after_hold": ["Thank you for holding. I have the details on my screen now.",
                   "Thanks for waiting. Okay, I found what I was looking for."],
    "cust_hold": ["Hold on, let me find the letter you sent me.",
                  "Just a second, I need to grab my bank statement."],
    "cust_after_hold": ["Okay, sorry about that, I have it here now.", "Right, I have got the statement in front of me."],
    "ack": ["Okay, thank you.", "Right, that makes sense.", "Oh, okay, good to know.", "Alright, thanks for checking."],
    "anything_else": ["Is there anything else I can help you with today?",
                      "Was there anything else you wanted to ask about your policy?"],
    "cust_close": ["No, that is everything, thank you very much for your help.", "No, that was all. Thanks a lot."],
    "agent_close": ["Thank you for calling {company}, and have a great rest of your day.",
                    "You are welcome. Thanks for calling {company}, goodbye."],
}

ZH = {
    "company": ["安和保险", "平远保险", "华信人寿", "长宁财险"],
    "agent_name": ["小王", "小李", "小陈", "小张", "小刘"],
    "cust_name": ["王建国", "李秀英", "张伟", "刘洋", "陈静", "赵磊"],
    "dob": ["一九八四年五月十二日", "一九七九年十月三日", "一九九零年六月二十一日", "一九六八年二月九日"],
    "policy": ["八六零三二一七", "五五二九零四一", "七一三八六二九", "三零九四七五八"],
    "amount": ["两百四十元", "一千八百元", "九十五元", "三千二百元", "五百元"],
    "greeting": [
        "您好，欢迎致电{company}，我是客服{agent}，请问有什么可以帮您？",
        "您好，这里是{company}客户服务中心，工号二零八，我是{agent}，请问您需要办理什么业务？",
        "您好，感谢您致电{company}，我是{agent}，很高兴为您服务。",
    ],
    "reason": {
        "claims": ["你好，我想问一下上个月车子出险以后报的那个理赔，现在到哪一步了？",
                   "你好，我两个星期前报了家里漏水的理赔，想查一下进度。",
                   "你好，修理厂一直催我，我想问问我的理赔什么时候能批下来。"],
        "policy": ["你好，我的家财险快到期了，续保之前想咨询几个问题。",
                   "你好，我想在车险上再加一个驾驶人，是我女儿。",
                   "你好，我下个月要搬家了，不知道保单需要怎么处理。"],
        "billing": ["你好，我这个月的保费被扣了两次，想问一下是怎么回事。",
                    "你好，我收到一封信说我逾期缴费了，可是我一直是自动扣款的。",
                    "你好，我想问一下今年的保费为什么涨了这么多。"],
    },
    "id_request": ["好的，我来帮您查询。请您提供一下投保人的姓名和保单号码。",
                   "可以的，麻烦您先告诉我保单号和投保人姓名，我帮您核实一下。"],
    "id_answer": ["好的，我叫{cust}，保单号是{policy}。", "投保人是{cust}，保单号码是{policy}。"],
    "security": ["谢谢您。为了保障您的信息安全，请再核对一下您的出生日期。",
                 "好的，谢谢。麻烦您再说一下投保人的出生日期，我核实一下身份。"],
    "security_answer": ["是{dob}。", "我的出生日期是{dob}。"],
    "verified": ["好的，身份核实通过了，我这边已经打开您的保单信息。", "谢谢您，信息都对上了，我现在帮您查一下。"],
    "question": {
        "claims": ["那这笔理赔款大概什么时候能到账？", "查勘员已经看过我上传的照片了吗？",
                   "我需要再去别的修理厂报价吗，还是一家就够了？", "修车可以自己选修理厂吗，还是必须去你们合作的？",
                   "修车这段时间能给我提供代步车吗？", "这次出险会不会影响我明年的保费？",
                   "结案之前还需要我补充什么材料吗？"],
        "policy": ["水管爆裂造成的损失在保障范围里吗？", "再加一个驾驶人大概要多交多少钱？",
                   "搬家以后需要重新投保吗？", "我的家财险免赔额是多少？",
                   "笔记本电脑在车里被偷了能赔吗？", "续保日期能不能改到月初？"],
        "billing": ["为什么这个月扣了我两次钱？", "多扣的那笔钱什么时候能退回来？",
                    "自动扣款失败了，会收滞纳金吗？", "我能不能从按月交改成一年交一次？",
                    "我一次都没出险，保费为什么还涨了？", "扣款的银行卡能换一张吗？"],
    },
    "answer": {
        "claims": ["查勘员昨天已经核定了维修金额，{amount}的赔款预计五个工作日内到账。",
                   "照片周二已经审核过了，没有问题，您这边不需要再补充材料。",
                   "您这个情况一家修理厂的报价就够了，损失金额在免查勘范围内。",
                   "您可以选择任何有资质的修理厂，修好以后把发票拍照上传就可以。",
                   "您的保单包含代步车服务，维修期间最多可以用十四天。",
                   "非本方责任的事故，不会影响您的无赔款优待系数。"],
        "policy": ["突发的水管爆裂是在保障范围内的，但是长期渗漏造成的损失不赔。",
                   "增加一位驾驶人，一年大概多交{amount}，具体要看驾驶记录。",
                   "不用重新投保，您把新地址和搬家日期告诉我们就可以了。",
                   "您的家庭财产险每次事故的免赔额是{amount}。",
                   "锁好的车里被盗的物品，最高可以赔付一千元。",
                   "续保日期可以帮您调整，保费差额会按天重新计算。"],
        "billing": ["我看到了重复扣的{amount}，退款申请已经帮您提交了。",
                    "退款一般三到五个工作日会退回到您的原支付账户。",
                    "这次是第一次扣款失败，滞纳金已经帮您免掉了。",
                    "可以改成年缴，年缴的话还能便宜百分之五左右。",
                    "今年涨价主要是因为您所在地区的重置成本上涨了。",
                    "可以的，我给您发一个安全链接，您在上面修改银行卡信息。"],
    },
    "long_explanation": [
        "接下来的流程是这样的，查勘员先审核维修报价，然后理赔部门按照您的保障范围进行核对，核对通过以后我们会直接把钱打给修理厂，一般需要一周左右。",
        "我跟您解释一下续保的流程，到期前一个月我们会把新的保费发给您，如果您不做任何操作，保单会自动续保，首期保费在同一天扣款。",
        "我这边看到的情况是，月初第一笔扣款已经成功了，然后三号系统因为银行接口出错又扣了一次，所以您的账单上有两笔。",
    ],
    "ask_story": ["好的，您能跟我详细说一下当时是什么情况吗？", "明白，那您具体说一下是怎么回事？"],
    "cust_long_story": [
        "是这样的，我们周末出去玩了两天，回来一看厨房水槽下面的水管爆了，整个地板都泡了，橱柜也全坏了。",
        "我那天下班开车走高架，前面的车突然急刹，我没来得及停住就撞上去了，然后后面的车又追尾了我。",
        "问题是我三月份换了银行卡，当时也打电话跟你们说过了，可是一直没收到确认，我也不知道到底改了没有。",
    ],
    "cust_interrupt": ["不好意思，我问的不是这个，我就想知道钱到底什么时候能到？",
                       "等一下等一下，上次打电话的时候没人跟我说过这些，为什么现在才告诉我？",
                       "你先别说了，材料我早就全部交齐了，为什么到现在还没办好？"],
    "agent_interrupt": ["不好意思打断一下，麻烦您先告诉我报案号，我好找到您的案件。",
                        "先生我先打断一下，请问事故是哪一天发生的？",
                        "抱歉打断您，我需要先核对一下银行卡的后四位。"],
    "after_agent_interrupt": ["哦，好的，是上个月十四号。", "报案号是五五二一。", "后四位是七三九二。"],
    "after_cust_interrupt": ["非常抱歉，您说得对，赔款最晚周五之前会打到您的账户。",
                             "我理解，真的很抱歉，我今天就帮您把这件事处理完。"],
    "fast": [
        "温馨提示一下，保障内容的变更从续保日零点开始生效，每次事故都要单独扣除免赔额，如果您在犹豫期十四天内退保，保费可以全额退还。",
        "根据保险条款第四条，意外损失在保险金额以内赔付，需要扣除免赔额，前提是您在三十天内报案，并且已经采取了合理的防损措施。",
        "提醒您一下，本次通话会被录音用于培训和质量管理，您的个人信息会按照我们的隐私政策处理，您可以随时书面申请查阅。",
        "退款会原路退回到您付款的银行卡，根据银行不同最长需要十个工作日，我们处理完成以后会给您发送短信通知。",
    ],
    "cust_agitated": ["这已经是我第三次打电话了，每次都说会给我回电话，结果一个人都没打过来！",
                      "我在你们这里交了十二年的保费，真出事了你们跟我说不赔？太过分了！",
                      "我不可能再等两个星期，我现在就要用车，没有车我连班都上不了！",
                      "你们多扣了我的钱，我这个月房租都交不上了，你知道这有多严重吗？"],
    "cust_angry_open": {
        "claims": ["我等了三个星期了，说好给我回电话，到现在一个人都没打过来！",
                   "我的车在修理厂放了一个月了，你们一分钱都还没赔！",
                   "我两个星期前就报案了，每次打电话都是不一样的说法，到底怎么回事？"],
        "policy": ["你们业务员当初说这个都能保，现在又说不在保障范围，这是什么意思！",
                   "你们凭什么不通知我就把保单退了？我要用的时候才发现！",
                   "我说了三次要加我女儿当驾驶人，到现在还没加上！"],
        "billing": ["你们这个月从我卡上扣了两次保费，连一句道歉都没有！",
                    "我明明已经交过钱了，你们还给我寄逾期通知，太离谱了！",
                    "保费一下子涨了四成，也没人跟我解释，我现在就要一个说法！"],
    },
    "cust_angry_close": ["没有了，这次一定要给我回电话！", "没了，明天之前必须给我处理好！",
                         "没有了，我真不想再为这件事给你们打电话了！"],
    "angry_tail": ["这些我都已经说过好几遍了！", "怎么就这么麻烦？", "我都跟你们说了两次了！",
                   "你们快点处理好不好！", "我没那么多时间跟你们耗！"],
    "agent_agitated": ["先生，这个问题我已经跟您解释三遍了，水灾不在保障范围内，我这边真的没有办法！",
                       "我是在帮您处理，可是您一直打断我，请您先让我把话说完好吗！",
                       "理赔部门的决定我改不了，您再问多少遍答案都是一样的！"],
    "agent_calm_after": ["非常理解您的心情，真的很抱歉，我现在马上帮您看看能怎么处理。",
                         "我明白，让您等了这么久真的很抱歉，我今天就把您的问题升级给主管。"],
    "cust_after_agent_agitated": ["好了好了，你跟我说话不用这么大声。", "那行吧，我要投诉，请帮我登记一下。"],
    "hold": ["我帮您在系统里查一下，请您稍等。", "请您稍等片刻，我这边查询一下。"],
    "after_hold": ["感谢您的耐心等待，我这边已经查到了。", "让您久等了，相关信息我已经找到了。"],
    "cust_hold": ["你等一下，我找一下你们寄给我的那封信。", "稍等一下，我去拿一下银行账单。"],
    "cust_after_hold": ["好了，不好意思，我找到了。", "好，账单我拿到了。"],
    "ack": ["好的，谢谢。", "嗯，明白了。", "哦，那就好。", "行，谢谢你帮我查。"],
    "anything_else": ["请问还有其他可以帮您的吗？", "关于您的保单，您还有别的问题吗？"],
    "cust_close": ["没有了，谢谢你的帮助。", "没有了，就这些，谢谢。"],
    "agent_close": ["感谢您致电{company}，祝您生活愉快，再见。", "不客气，感谢您的来电，再见。"],
}

BANKS = {"en": EN, "zh": ZH}
TOPICS = ("claims", "policy", "billing")


# ---- planning ----------------------------------------------------------------------

@dataclass
class _Voice:
    voice: str
    speed: int
    pitch: int
    amplitude: int
    variant: str = "plain"
    range: int = 50
    effort: float = 0.0
    amplitudes: tuple[int, int] = NORMAL_AMPLITUDE
    speeds: tuple[int, int] | None = None   # calm speed bounds, default NORMAL_SPEED
    gain_db: float = 0.0


@dataclass
class _Planner:
    rng: random.Random
    language: str
    voices: dict[str, _Voice]
    slots: dict[str, str]
    turns: list[Turn] = field(default_factory=list)
    est: list[tuple[str, float, float]] = field(default_factory=list)  # (speaker, planned start, end)
    normal_s: dict[str, float] = field(default_factory=lambda: {"agent": 0.0, "customer": 0.0})
    last_gap: float = 0.0
    # the customer's agitation from the first word: turns left, or until this planned time
    mr: random.Random = field(default_factory=random.Random)   # mood and voice draws (own stream)
    angry_turns: int = 0
    angry_until: float = 0.0
    tails: list[str] = field(default_factory=list)

    @property
    def end(self) -> float:
        return max((e for _, _, e in self.est), default=0.0)

    def pick(self, bank: list[str]) -> str:
        return self.rng.choice(bank).format(**self.slots)

    def pick_min(self, bank: list[str], speaker: str, speed: int, min_s: float) -> str:
        """A phrase at least min_s long at this speed; joins two when none is long enough."""
        ok = [t for t in bank if estimate_seconds(t.format(**self.slots), self.language, speed) >= min_s]
        if ok:
            return self.rng.choice(ok).format(**self.slots)
        a, b = self.rng.sample(bank, 2)
        return (a + (" " if self.language == "en" else "") + b).format(**self.slots)

    def normal_gap(self, speaker: str) -> float:
        """Hard negatives: mostly short gaps, sometimes 1.2-3 s, sometimes a short overlap."""
        prev = self.turns[-1] if self.turns else None
        r = self.rng.random()
        if (prev is not None and prev.speaker != speaker and self.last_gap >= 0
                and self.est[-1][2] - self.est[-1][1] > 1.5 and r < 0.15):
            return -round(self.rng.uniform(*SHORT_OVERLAP), 2)
        if r < 0.30:
            return round(self.rng.uniform(1.2, SHORT_GAP[1]), 2)
        return round(self.rng.uniform(SHORT_GAP[0], 1.2), 2)

    def params(self, speaker: str, style: str) -> EspeakParams:
        v, rng, lang, mr = self.voices[speaker], self.rng, self.language, self.mr
        if style == "fast":
            return EspeakParams(voice=v.voice, speed=rng.randint(*FAST_SPEED[lang]), pitch=v.pitch,
                                amplitude=rng.randint(*v.amplitudes), range=v.range, effort=v.effort)
        if style == "agitated":
            return EspeakParams(voice=v.voice, speed=min(500, round(v.speed * rng.uniform(*AGITATED_SPEED_FACTOR))),
                                pitch=min(99, v.pitch + rng.randint(*AGITATED_PITCH_RAISE)),
                                amplitude=max(rng.randint(*AGITATED_AMPLITUDE), min(200, v.amplitudes[1] + 10)),
                                range=min(99, v.range + mr.randint(*AGITATED_RANGE_RAISE)),
                                effort=round(min(12.0, v.effort + mr.uniform(*AGITATED_EFFORT_RAISE)), 1))
        lo, hi = v.speeds or NORMAL_SPEED[lang]
        return EspeakParams(voice=v.voice, speed=max(lo, min(hi, v.speed + rng.randint(-12, 12))),
                            pitch=max(0, min(99, v.pitch + rng.randint(-4, 4))),
                            amplitude=rng.randint(*v.amplitudes), range=v.range, effort=v.effort)

    def angry(self, speaker: str) -> bool:
        """Is the customer still in their agitated stretch (from the first word, or at the end)?"""
        return speaker == "customer" and (self.angry_turns > 0 or self.end < self.angry_until)

    def lengthen(self, text: str, speed: int) -> str:
        """An agitated turn long enough to be judged: short answers get an angry tail."""
        sep = " " if self.language == "en" else ""
        tails = list(self.tails)
        self.mr.shuffle(tails)
        while tails and estimate_seconds(text, self.language, speed) < MIN_EVENT_TURN_S:
            text = text + sep + tails.pop()
        return text

    def say(self, speaker: str, text: str, gap: float | None = None, style: str = "normal",
            params: EspeakParams | None = None) -> float:
        """Append a turn; returns its planned length."""
        if style == "normal" and self.angry(speaker):
            style, params = "agitated", None
        if style == "agitated" and speaker == "customer" and self.angry_turns > 0:
            self.angry_turns -= 1
        p = params or self.params(speaker, style)
        if style == "agitated":
            text = self.lengthen(text, p.speed or 170)
        gap = self.normal_gap(speaker) if gap is None else gap
        if style == "agitated" and self.turns and self.turns[-1].speaker == speaker and self.turns[-1].style == "agitated":
            gap = max(gap, AGITATED_APART_S)   # two agitated turns in a row are two episodes, not one
        if not self.turns:
            gap = max(gap, 0.4)
        start = self.end + gap
        dur = estimate_seconds(text, self.language, p.speed or 170)
        self.turns.append(Turn(speaker=speaker, text=text, gap=gap, style=style, espeak=p))  # type: ignore[arg-type]
        self.est.append((speaker, start, start + dur))
        self.last_gap = gap
        if style == "normal":
            self.normal_s[speaker] += dur
        return dur

    def say_bank(self, speaker: str, bank: list[str], **kw) -> float:
        return self.say(speaker, self.pick(bank), **kw)


def _other(speaker: str) -> str:
    return "customer" if speaker == "agent" else "agent"


def _draw(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def _vary(v: _Voice, variant: str, mr: random.Random, language: str) -> None:
    """A calm voice's own character: range and effort vary a little for everyone; a loud
    voice is louder with a little more effort, a high one higher in a narrower range."""
    v.variant = variant
    v.range = mr.randint(*NORMAL_RANGE)
    v.effort = round(mr.uniform(*NORMAL_EFFORT), 1)
    if "loud" in variant:
        v.amplitudes = LOUD_AMPLITUDE
        v.amplitude = mr.randint(*LOUD_AMPLITUDE)
        v.effort = round(mr.uniform(*LOUD_EFFORT), 1)
    if "high" in variant:
        v.pitch = mr.randint(*HIGH_PITCH)
        v.range = mr.randint(*HIGH_RANGE)
    if variant == "fast":
        v.speeds = CALM_FAST_SPEED[language]
        v.speed = mr.randint(*v.speeds)


def generate_call(seed: int | str, language: str) -> CallScript:
    """One random insurance call; the same seed and language always give the same script."""
    if language not in BANKS:
        raise ValueError(f"language {language!r}: use en or zh")
    rng = random.Random(f"callcue-synth:{seed}:{language}")
    B = BANKS[language]
    topic = rng.choice(TOPICS)
    # which party gets the female variant varies, so detectors cannot key on voice type
    female = rng.choice(("agent", "customer"))
    voices = {sp: _Voice(BASE_VOICE[language] + ("+f3" if sp == female else ""), rng.randint(*BASE_SPEED[language]),
                         rng.randint(*BASE_PITCH), rng.randint(90, 105)) for sp in ("agent", "customer")}
    slots = {k: rng.choice(B[k]) for k in ("company", "agent_name", "cust_name", "dob", "policy", "amount")}
    slots["agent"] = slots.pop("agent_name")
    slots["cust"] = slots.pop("cust_name")
    # mood, voice variants and line gains come from their own stream, so the rest of a call
    # (its turns, events and timing) is what the same seed gave before they existed
    mr = random.Random(f"callcue-synth-mood:{seed}:{language}")
    mood = _draw(mr, MOODS)
    for sp, v in voices.items():
        _vary(v, _draw(mr, VARIANTS[sp]), mr, language)
    if mr.random() < GAIN_MISMATCH_P:
        voices[mr.choice(("agent", "customer"))].gain_db = round(mr.choice((-1, 1)) * mr.uniform(*GAIN_MISMATCH_DB), 1)
    P = _Planner(rng, language, voices, slots, mr=mr, tails=list(B["angry_tail"]))
    target = rng.uniform(*CALL_LENGTH)
    planned = {k: rng.randint(0, 2) for k in ("silence", "talk_over", "fast", "agitated")}
    if mood == "angry_open":
        P.angry_turns = mr.randint(*ANGRY_OPEN_TURNS)
    elif mood == "angry_long":
        P.angry_until = mr.uniform(*ANGRY_LONG_S)

    # opening: greeting, reason, identity and security check (calm, unless the customer
    # is agitated from the first word)
    P.say_bank("agent", B["greeting"], gap=round(rng.uniform(0.3, 1.0), 2))
    if mood in ("angry_open", "angry_long"):
        P.say("customer", mr.choice(B["cust_angry_open"][topic]).format(**slots), style="agitated")
    else:
        P.say_bank("customer", B["reason"][topic])
    P.say_bank("agent", B["id_request"])
    P.say_bank("customer", B["id_answer"])
    P.say_bank("agent", B["security"])
    P.say_bank("customer", B["security_answer"])
    P.say_bank("agent", B["verified"])

    tokens = [k for k, n in planned.items() for _ in range(n)]
    rng.shuffle(tokens)
    closing_s = 14.0 + (16.0 if mood == "angry_end" else 0.0)
    questions = list(B["question"][topic])
    answers = list(B["answer"][topic])
    rng.shuffle(questions)
    rng.shuffle(answers)
    qa = 0
    sep = " " if language == "en" else ""
    done = {k: 0 for k in planned}

    def exchange() -> None:
        nonlocal qa
        P.say("customer", questions[qa % len(questions)].format(**slots))
        P.say("agent", answers[qa % len(answers)].format(**slots))
        qa += 1
        if rng.random() < 0.3:
            P.say_bank("customer", B["ack"])

    # planned seconds each event adds (its turns and gaps), to keep the call under MAX_CALL_S
    cost = {"silence": 18.0, "talk_over": 20.0, "fast": 12.0, "agitated": 14.0}
    while tokens or P.end + 6.0 < target - closing_s:   # 6 s: about half an exchange
        while tokens and P.end + sum(cost[k] for k in tokens) + closing_s > MAX_CALL_S:
            tokens.pop(rng.randrange(len(tokens)))
        spare = (target - closing_s - P.end) - sum(cost[k] for k in tokens)
        if not tokens or (spare > 0 and rng.random() < 0.5):
            exchange()
            continue
        kind = tokens.pop()
        done[kind] += 1
        if kind == "silence":
            who = "agent" if rng.random() < 0.7 else "customer"
            if who == "agent":
                P.say_bank("agent", B["hold"])
                P.say("agent", P.pick(B["after_hold"]) + sep + answers[qa % len(answers)].format(**slots),
                      gap=round(rng.uniform(*SILENCE_GAP), 2))
                qa += 1
            else:
                P.say_bank("customer", B["cust_hold"])
                P.say_bank("customer", B["cust_after_hold"], gap=round(rng.uniform(*SILENCE_GAP), 2))
        elif kind == "talk_over":
            interrupter = rng.choice(("agent", "customer"))
            victim = _other(interrupter)
            g = round(rng.uniform(*TALK_OVER), 2)
            vp = P.params(victim, "normal")
            ip = P.params(interrupter, "normal")
            if victim == "agent":
                P.say("customer", questions[qa % len(questions)].format(**slots))
                qa += 1
                long_bank, cut_bank, reply_bank = B["long_explanation"], B["cust_interrupt"], B["after_cust_interrupt"]
            else:
                P.say_bank("agent", B["ask_story"])
                long_bank, cut_bank, reply_bank = B["cust_long_story"], B["agent_interrupt"], B["after_agent_interrupt"]
            # the interrupted turn must outlast the overlap, and the interruption must outlast the interrupted turn
            P.say(victim, P.pick_min(long_bank, victim, vp.speed, g + 2.0), gap=round(rng.uniform(0.4, 1.0), 2),
                  params=vp)
            P.say(interrupter, P.pick_min(cut_bank, interrupter, ip.speed, g + 1.2), gap=-g, params=ip)
            P.say_bank(victim, reply_bank, gap=round(rng.uniform(0.4, 1.2), 2))
            P.last_gap = -1.0  # no short overlap right after a talk-over
        elif kind == "fast":
            P.say("customer", questions[qa % len(questions)].format(**slots))
            qa += 1
            fp = P.params("agent", "fast")
            P.say("agent", P.pick_min(B["fast"], "agent", fp.speed, MIN_EVENT_TURN_S), style="fast", params=fp)
        else:
            who = rng.choice(("agent", "customer"))
            if P.angry("customer") or mood == "angry_end":
                who = "agent"   # the customer's agitation is this call's own story
            while P.normal_s[who] < BASELINE_S:
                exchange()
            ap = P.params(who, "agitated")
            if who == "customer":
                P.say("customer", P.pick_min(B["cust_agitated"], who, ap.speed, MIN_EVENT_TURN_S),
                      style="agitated", params=ap)
                P.say_bank("agent", B["agent_calm_after"])
            else:
                P.say("customer", questions[qa % len(questions)].format(**slots))
                qa += 1
                P.say("agent", P.pick_min(B["agent_agitated"], who, ap.speed, MIN_EVENT_TURN_S),
                      style="agitated", params=ap)
                P.say_bank("customer", B["cust_after_agent_agitated"])

    P.angry_turns, P.angry_until = 0, 0.0   # an agitated stretch ends with the main part of the call
    P.say_bank("agent", B["anything_else"])
    if mood == "angry_end":
        # calm all along, agitated at the very end: a complaint, and the close said in anger
        P.say("customer", P.pick_min(B["cust_agitated"], "customer", 170, MIN_EVENT_TURN_S), style="agitated")
        P.say_bank("agent", B["agent_calm_after"])
    if mood == "angry_end" and mr.random() < 0.5:
        P.say("customer", mr.choice(B["cust_angry_close"]), style="agitated")
    else:
        P.say_bank("customer", B["cust_close"])
    P.say_bank("agent", B["agent_close"])

    summary = ", ".join(f"{n} {k}" for k, n in done.items())
    variants = ", ".join(f"{sp} {v.variant}" + (f" {v.gain_db:+g} dB" if v.gain_db else "")
                         for sp, v in voices.items())
    return CallScript(
        language=language,  # type: ignore[arg-type]
        title=f"generated {topic} call, seed {seed}: planned {summary}; mood {mood}; voices {variants}",
        voices={sp: VoiceSettings(voice=v.voice, speed=v.speed, pitch=v.pitch, amplitude=v.amplitude,
                                  range=v.range, effort=v.effort, gain_db=v.gain_db)
                for sp, v in voices.items()},
        tail=round(rng.uniform(0.8, 2.0), 2),
        turns=P.turns,
    )
