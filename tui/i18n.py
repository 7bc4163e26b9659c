"""UI text in English and Chinese (`--lang en|zh`).

Alert messages come from the box in English; for Chinese the common kinds are
re-worded from their evidence (`describe`), anything else keeps the box's text.
"""
from __future__ import annotations

from typing import Any

LANGS = ("en", "zh")

TEXT: dict[str, dict[str, str]] = {
    "title": {"en": "callcue supervisor", "zh": "callcue 班长台"},
    "agent_title": {"en": "callcue desk", "zh": "callcue 坐席助手"},
    "connected": {"en": "connected", "zh": "已连接"},
    "disconnected": {"en": "DISCONNECTED - retrying", "zh": "连接断开 - 重连中"},
    "connecting": {"en": "connecting", "zh": "连接中"},
    "all_floors": {"en": "all floors", "zh": "全部楼层"},
    # board columns
    "col_line": {"en": "Line", "zh": "线路"},
    "col_agent": {"en": "Agent", "zh": "坐席"},
    "col_state": {"en": "State", "zh": "状态"},
    "col_dur": {"en": "Time", "zh": "时长"},
    "col_speaking": {"en": "Speaking", "zh": "说话"},
    "col_mood": {"en": "Mood", "zh": "情绪"},
    "col_alerts": {"en": "Alerts", "zh": "告警"},
    "col_last": {"en": "Latest", "zh": "最新告警"},
    "col_time": {"en": "Time", "zh": "时间"},
    "col_sev": {"en": "Sev", "zh": "级别"},
    "col_kind": {"en": "Kind", "zh": "类型"},
    "col_msg": {"en": "What", "zh": "内容"},
    "col_ack": {"en": "Ack", "zh": "确认"},
    # states and speakers
    "idle": {"en": "idle", "zh": "空闲"},
    "in_call": {"en": "in call", "zh": "通话中"},
    "down": {"en": "down", "zh": "故障"},
    "unknown": {"en": "?", "zh": "未知"},
    "agent": {"en": "agent", "zh": "坐席"},
    "customer": {"en": "customer", "zh": "客户"},
    "both": {"en": "both!", "zh": "同时说"},
    "silence": {"en": "silence", "zh": "静音"},
    "info": {"en": "info", "zh": "提示"},
    "warning": {"en": "warn", "zh": "警告"},
    "critical": {"en": "CRIT", "zh": "严重"},
    # kinds
    "long_silence": {"en": "silence", "zh": "超长静音"},
    "talk_over": {"en": "talk over", "zh": "抢插话"},
    "fast_speech": {"en": "fast speech", "zh": "语速过快"},
    "agitation": {"en": "agitation", "zh": "情绪激动"},
    "sensitive_word": {"en": "sensitive word", "zh": "敏感词"},
    "missing_phrase": {"en": "missing phrase", "zh": "漏说话术"},
    "line_down": {"en": "line down", "zh": "线路故障"},
    "coaching": {"en": "coaching", "zh": "辅导"},
    "takeover": {"en": "TAKE OVER", "zh": "需接管"},
    # sections
    "feed": {"en": "Alerts (newest first)", "zh": "告警 (最新在前)"},
    "board": {"en": "Floor", "zh": "楼层"},
    "stats_calls": {"en": "in call {n}/{total}", "zh": "通话 {n}/{total}"},
    "stats_down": {"en": "down {n}", "zh": "故障 {n}"},
    "stats_open": {"en": "open alerts {n}", "zh": "未处理 {n}"},
    "stats_aht": {"en": "AHT {aht} ({n} calls)", "zh": "平均处理 {aht} ({n} 通)"},
    "stats_hour": {"en": "last hour", "zh": "近一小时"},
    "stats_none": {"en": "no alerts", "zh": "无告警"},
    "stats_boxes_off": {"en": "{n} box(es) offline", "zh": "{n} 台盒子离线"},
    "stats_rejected": {"en": "{n} bad msgs", "zh": "{n} 条坏消息"},
    "no_lines": {"en": "No lines yet. Waiting for line state on {topic}",
                 "zh": "暂无线路,等待 {topic} 上的线路状态"},
    "no_alerts": {"en": "No alerts.", "zh": "暂无告警。"},
    # call view
    "call_of": {"en": "Line {line}", "zh": "线路 {line}"},
    "no_call": {"en": "No call on this line yet.", "zh": "该线路还没有通话。"},
    "call_ended": {"en": "ended", "zh": "已结束"},
    "timeline": {"en": "Timeline", "zh": "时间轴"},
    "agitation_row": {"en": "agitation", "zh": "激动度"},
    "alerts_row": {"en": "alerts", "zh": "告警"},
    "transcript": {"en": "Transcript", "zh": "实时转写"},
    "no_transcript": {"en": "No transcript (speech recognition off or nothing said yet).",
                      "zh": "暂无转写 (未开启语音识别或尚无对话)。"},
    "flow": {"en": "Flow", "zh": "流程"},
    "next": {"en": "next", "zh": "下一步"},
    "suggestions": {"en": "Suggestions", "zh": "推荐"},
    "call_alerts": {"en": "Alerts in this call", "zh": "本通告警"},
    "summary": {"en": "Summary", "zh": "小结"},
    "acked_by": {"en": "ack {by}", "zh": "{by} 已确认"},
    "flagged": {"en": "flagged {reason} by {by}", "zh": "{by} 标记: {reason}"},
    # actions and notices
    "ack_sent": {"en": "Acknowledged {n} alert(s) on line {line}", "zh": "已确认线路 {line} 的 {n} 条告警"},
    "nothing_to_ack": {"en": "No open alert to acknowledge", "zh": "没有待确认的告警"},
    "flag_sent": {"en": "Line {line}: call flagged for {reason}", "zh": "线路 {line}: 已标记{reason}"},
    "no_call_to_flag": {"en": "Line {line} has no call to flag", "zh": "线路 {line} 没有可标记的通话"},
    "not_connected": {"en": "Not connected to the broker: nothing was sent", "zh": "未连接消息服务器: 未发送"},
    "cmd_refused": {"en": "The broker refused the command ({reason}): user {user} may not send it here",
                    "zh": "消息服务器拒绝了该指令 ({reason}): 用户 {user} 无此权限"},
    "confirm_takeover": {"en": "Flag line {line} (call {call}) for TAKE-OVER now? y / n",
                         "zh": "标记线路 {line} (通话 {call}) 需要立即接管? y / n"},
    "help_title": {"en": "Keys", "zh": "快捷键"},
    "keys_board": {"en": "↑↓ Enter call  Tab feed  a ack  c coach  t take-over  h past  L 中文  ? help  q quit",
                   "zh": "↑↓ 选择  回车 通话  Tab 切换  a 确认  c 辅导  t 接管  h 历史  L English  ? 帮助  q 退出"},
    "keys_call": {"en": "Esc back  [ ] prev/next line  a ack  c coach  t take-over  h past  ↑↓ scroll  ? help",
                  "zh": "Esc 返回  [ ] 上/下一线路  a 确认  c 辅导  t 接管  h 历史  ↑↓ 滚动  ? 帮助"},
    "keys_agent": {"en": "↑↓ select  a/Enter acknowledge  e ticket  L 中文  q quit",
                   "zh": "↑↓ 选择  a/回车 确认  e 工单  L English  q 退出"},
    # look back (history.py) and the desk's ticket (agent.py)
    "keys_past": {"en": "↑↓ select  Enter timeline  g line / agent  r ask again  Esc back",
                  "zh": "↑↓ 选择  回车 时间线  g 线路/坐席  r 重新查询  Esc 返回"},
    "keys_timeline": {"en": "↑↓ PgUp PgDn scroll  Esc back", "zh": "↑↓ 翻页 滚动  Esc 返回"},
    "past_line": {"en": "Calls of the last day on line {line}", "zh": "线路 {line} 近一天的通话"},
    "past_agent": {"en": "Calls of the last day of {agent}", "zh": "{agent} 近一天的通话"},
    "past_n": {"en": "{n} call(s)", "zh": "{n} 通"},
    "past_none": {"en": "No calls in the last day.", "zh": "近一天没有通话。"},
    "asking": {"en": "asking {boxes}…", "zh": "正在查询 {boxes}…"},
    "no_answer": {"en": "{box} did not answer", "zh": "{box} 没有应答"},
    "no_box": {"en": "no box is known to serve line {line} yet (its health not seen)",
               "zh": "尚不知道线路 {line} 属于哪台盒子 (未收到健康信息)"},
    "no_agent": {"en": "This line has no agent name", "zh": "该线路没有坐席名"},
    "col_type": {"en": "Type", "zh": "类型"},
    "col_call": {"en": "Call", "zh": "通话"},
    "ticket": {"en": "Ticket", "zh": "工单"},
    "ticket_none": {"en": "No ticket yet: it is filled when a call ends.", "zh": "暂无工单: 通话结束后自动填写。"},
    "keys_ticket": {"en": "↑↓ field  Enter correct  Esc back", "zh": "↑↓ 字段  回车 修改  Esc 返回"},
    "keys_edit": {"en": "Enter send  Esc cancel  (empty: the call does not state it)",
                  "zh": "回车 发送  Esc 取消  (留空: 通话中没有提到)"},
    "keys_pick": {"en": "↑↓ choose  Enter send  Esc cancel", "zh": "↑↓ 选择  回车 发送  Esc 取消"},
    "correction_sent": {"en": "Correction of {field} sent", "zh": "已提交 {field} 的修改"},
    "correction_bad": {"en": "{field}: {why}", "zh": "{field}: {why}"},
    "due": {"en": "due (YYYY-MM-DD)", "zh": "期限 (YYYY-MM-DD)"},
    "empty_value": {"en": "(not stated)", "zh": "(未提及)"},
    "corrected": {"en": "corrected", "zh": "已修改"},
    "agent_waiting": {"en": "Waiting for cues on line {line}…", "zh": "等待线路 {line} 的提示…"},
    "seen": {"en": "seen", "zh": "已读"},
    "score": {"en": "score", "zh": "得分"},
}

HELP: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("↑↓ PgUp PgDn Home End", "move in the focused list"),
        ("Tab", "floor board / alert feed"),
        ("Enter", "call view of the selected line or alert"),
        ("a", "acknowledge the selected alert (feed), or all open alerts of the line"),
        ("c", "flag the call for coaching"),
        ("t", "flag the call for take-over (asks y/n)"),
        ("h", "past calls of the line's last day (g: of its agent); Enter: a call's timeline"),
        ("[ ]", "call view: previous / next line"),
        ("Esc", "back to the floor board"),
        ("L", "switch language (English / 中文)"),
        ("?", "this help"),
        ("q", "quit"),
        ("", ""),
        ("Board", "sorted by risk: open alerts, customer mood, line down, take-over"),
        ("Speaking", "transcripts of the last 2 s, talk-over and silence alerts"),
        ("Mood", "customer agitation alerts, fading with a 60 s half-life"),
    ],
    "zh": [
        ("↑↓ PgUp PgDn Home End", "在当前列表中移动"),
        ("Tab", "在楼层看板和告警列表之间切换"),
        ("回车", "打开所选线路 (或所选告警) 的通话详情"),
        ("a", "确认所选告警 (告警列表), 或该线路全部未处理告警"),
        ("c", "标记该通话需要辅导"),
        ("t", "标记该通话需要接管 (确认 y/n)"),
        ("h", "该线路近一天的通话 (g: 该坐席的); 回车: 通话时间线"),
        ("[ ]", "通话详情: 上一条 / 下一条线路 (按看板顺序)"),
        ("Esc", "返回楼层看板"),
        ("L", "切换语言 (English / 中文)"),
        ("?", "本帮助"),
        ("q", "退出"),
        ("", ""),
        ("看板", "按风险排序: 未处理告警、客户情绪、线路故障、接管"),
        ("说话", "依据最近 2 秒的转写, 以及抢插话 / 静音告警"),
        ("情绪", "本通话客户的情绪激动告警, 60 秒半衰"),
    ],
}


def t(key: str, lang: str, **fmt: Any) -> str:
    entry = TEXT.get(key)
    if entry is None:
        return key.format(**fmt) if fmt else key
    text = entry.get(lang) or entry["en"]
    return text.format(**fmt) if fmt else text


def _num(ev: dict[str, Any], name: str) -> float | None:
    v = ev.get(name)
    return float(v) if isinstance(v, (int, float)) else None


def describe(kind: str, message: str, speaker: str | None, evidence: dict[str, Any], lang: str) -> str:
    """One-line description of an alert in the UI language."""
    if lang != "zh":
        return message
    who = t(speaker, "zh") if speaker in ("agent", "customer") else ""
    ev = evidence
    if kind == "talk_over" and _num(ev, "overlap_s") is not None:
        return f"{who}抢插话 {_num(ev, 'overlap_s'):.1f} 秒"
    if kind == "long_silence" and _num(ev, "silence_s") is not None:
        return f"超长静音 {_num(ev, 'silence_s'):.1f} 秒"
    if kind == "fast_speech" and _num(ev, "rate_syl_s") is not None:
        return f"坐席语速过快 {_num(ev, 'rate_syl_s'):.1f} 音节/秒"
    if kind == "agitation" and _num(ev, "pitch_up_st") is not None:
        return (f"{who}情绪激动: 音高 +{_num(ev, 'pitch_up_st'):.1f} 半音, "
                f"响度 +{_num(ev, 'loudness_up_db') or 0:.1f} dB")
    if kind == "agitation" and _num(ev, "effort_up_db") is not None:
        # judged before the speaker had calm speech: against a calm voice (and the other party)
        text = f"{who}一开口就情绪激动: 发声用力比平静嗓音 +{_num(ev, 'effort_up_db'):.1f} dB"
        if ev.get("reference") == "other_party" and _num(ev, "loudness_up_db") is not None:
            text += f", 响度比对方 {_num(ev, 'loudness_up_db'):+.1f} dB"
        return text
    if kind == "sensitive_word" and ev.get("phrase"):
        return f"{who}说了敏感词 “{ev['phrase']}”"
    if kind == "line_down":
        return f"线路故障: {ev.get('reason') or message}"
    return message
