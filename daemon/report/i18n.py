"""The report's words in English and Chinese."""
from __future__ import annotations

LANGS = ("en", "zh")

_T: dict[str, tuple[str, str]] = {
    "title": ("Call quality report", "通话质检报告"),
    "period": ("Period", "时间范围"),
    "stores": ("Stores", "数据源"),
    "generated": ("Generated", "生成时间"),
    "headline": ("Headline figures", "核心指标"),
    "calls": ("Calls", "通话数"),
    "agents": ("Agents", "坐席数"),
    "teams": ("Teams", "班组数"),
    "floors": ("Floors", "楼层数"),
    "audio_h": ("Hours of calls", "通话时长（小时）"),
    "avg_qa": ("Average QA score", "平均质检分"),
    "pass_rate": ("QA pass rate", "质检合格率"),
    "avg_handle": ("Average handle time", "平均处理时长"),
    "alerts_100": ("Alerts per 100 calls", "每百通告警数"),
    "pitch_rate": ("Pitch rate", "开口率"),
    "flow_completion": ("Flow completion", "流程完成率"),
    "agitation_share": ("Calls with an agitated customer", "客户情绪激动通话占比"),
    "dead_air_share": ("Dead-air share of call time", "静默时长占比"),
    "talk_ratio": ("Agent talk / listen ratio", "坐席说听比"),
    "trends": ("Trends by day", "每日趋势"),
    "day": ("Day", "日期"),
    "issues": ("Issues", "问题"),
    "issues_by_freq": ("Issues by frequency", "问题（按出现次数）"),
    "issues_by_agents": ("Issues by agents affected", "问题（按涉及坐席数）"),
    "issue": ("Issue", "问题"),
    "kind": ("Kind", "类别"),
    "share_calls": ("Share of calls", "通话占比"),
    "alerts_by_kind": ("Alerts per 100 calls, by kind", "每百通告警数（按类型）"),
    "by_team": ("By team", "按班组"),
    "by_agent": ("By agent", "按坐席"),
    "team": ("Team", "班组"),
    "agent": ("Agent", "坐席"),
    "offers": ("Offers: pitch rate", "产品推荐：开口率"),
    "offer": ("Offer", "推荐产品"),
    "fitted": ("Fitted", "适合推荐"),
    "made": ("Pitched", "已推荐"),
    "opportunities": ("Opportunities", "推荐机会"),
    "flows": ("Call flows", "通话流程"),
    "flow": ("Flow", "流程"),
    "step": ("Step", "步骤"),
    "missed": ("Missed", "遗漏"),
    "missed_share": ("Missed in", "遗漏比例"),
    "most_missed": ("Most-missed steps", "最常遗漏的步骤"),
    "qa": ("QA scores", "质检得分"),
    "qa_dist": ("QA score distribution per team", "各班组质检分布"),
    "score": ("Score", "得分"),
    "handle": ("Handle time", "处理时长"),
    "minutes": ("minutes", "分钟"),
    "talk": ("Talk / listen", "说听比"),
    "dead_air": ("Dead air", "静默"),
    "agitation": ("Customer agitation", "客户情绪"),
    "agitated_calls": ("Agitated calls", "情绪激动通话"),
    "agitation_s_share": ("Agitated share of call time", "激动时长占比"),
    "agents_section": ("Agents", "坐席"),
    "agent_calls": ("Calls of", "通话列表："),
    "call": ("Call", "通话"),
    "started": ("Started", "开始时间"),
    "duration": ("Duration", "时长"),
    "call_type": ("Call type", "来电类型"),
    "lang": ("Language", "语言"),
    "summary": ("Summary", "摘要"),
    "timeline": ("Timeline", "时间线"),
    "scorecard": ("Scorecard", "质检评分表"),
    "item": ("Item", "评分项"),
    "weight": ("Weight", "权重"),
    "points": ("Points", "得分"),
    "not_applicable": ("n/a", "不适用"),
    "alerts": ("Alerts", "告警"),
    "speaker": ("Speaker", "说话方"),
    "time": ("Time", "时间"),
    "severity": ("Severity", "级别"),
    "from_s": ("From (s)", "开始（秒）"),
    "to_s": ("To (s)", "结束（秒）"),
    "steps": ("Flow steps", "流程步骤"),
    "done": ("done", "完成"),
    "not_done": ("missed", "遗漏"),
    "shown_of": ("showing {n} of {m} calls, lowest QA score first", "显示 {m} 通中的 {n} 通，按质检分从低到高"),
    "no_data": ("No calls in this period.", "该时间段内没有通话。"),
    "back_agent": ("back to agent", "返回坐席"),
    "back_top": ("top", "返回顶部"),
    "unknown": ("(unknown)", "（未知）"),
    "site_floor": ("Site / floor / box", "站点/楼层/盒子"),
    "floors_section": ("Floors and boxes", "楼层与盒子"),
    "site": ("Site", "站点"),
    "floor": ("Floor", "楼层"),
    "box": ("Box", "盒子"),
    "line": ("Line", "线路"),
    "ticket": ("Ticket", "工单"),
    "share": ("Share", "占比"),
    "avg": ("Average", "平均"),
    "calls_per_day": ("Calls per day", "每日通话数"),
    "sort_hint": ("Click a column heading to sort.", "点击表头可排序。"),
    "agent_speech": ("agent", "坐席"),
    "customer_speech": ("customer", "客户"),
    "csv_note": ("The same tables as CSV: callcue report --csv DIR", "同样的表格可导出为 CSV：callcue report --csv DIR"),
}

ISSUE_KINDS = {"alert": ("Alert", "告警"), "step": ("Missed step", "遗漏步骤"), "phrase": ("Missing phrase", "缺少话术"),
               "offer": ("Offer not pitched", "未推荐产品"), "qa": ("QA item lost points", "质检扣分项")}

ALERT_NAMES = {
    "long_silence": ("Dead air", "长时间静默"), "talk_over": ("Talk-over", "抢话"),
    "fast_speech": ("Fast speech", "语速过快"), "agitation": ("Agitation", "情绪激动"),
    "sensitive_word": ("Sensitive word", "敏感词"), "missing_phrase": ("Missing phrase", "缺少话术"),
    "line_down": ("Line down", "线路故障"),
}


def t(key: str, lang: str) -> str:
    en, zh = _T[key]
    return zh if lang == "zh" else en


def issue_kind(kind: str, lang: str) -> str:
    en, zh = ISSUE_KINDS.get(kind, (kind, kind))
    return zh if lang == "zh" else en


def alert_name(kind: str, lang: str) -> str:
    en, zh = ALERT_NAMES.get(kind, (kind, kind))
    return zh if lang == "zh" else en
