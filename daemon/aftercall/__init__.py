"""After the call: a filled ticket, a summary, a QA scorecard and the call type, from
what the call left behind (utterances of both channels, alerts, flow progress, pushes,
offers). Pure logic: a `CallRecord` in, plain data out; the line calls
`AfterCall(content).finish(record)` once the recogniser has finished the call.

Modules: forms.py (ticket templates and QA form of the content pack), record.py (the
call record), dates.py (dates said relative to the call date), extract.py (ticket
fields), classify.py (call type), summary.py, figures.py (talk/listen, silence,
interruptions, rate, agitation), scorecard.py (the QA form), finish.py (AfterCall).
"""
from __future__ import annotations

from typing import Any

__all__ = ["AfterCall", "CallRecord", "Utterance", "Alert"]


def __getattr__(name: str) -> Any:
    # imported on first use: pack.py loads forms.py while the assist package is still loading
    if name == "AfterCall":
        from .finish import AfterCall
        return AfterCall
    if name in ("CallRecord", "Utterance", "Alert"):
        from . import record
        return getattr(record, name)
    raise AttributeError(name)
