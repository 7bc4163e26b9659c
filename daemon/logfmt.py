"""Log lines that cannot be forged: whatever came from the wire (a call id, an agent
name, a topic) is logged with its control characters escaped, so a newline in a payload
never starts a line of its own in the daemon's log or the journal. Tracebacks keep
their lines (they come from the code, not the wire)."""
from __future__ import annotations

import logging
import re

# C0/C1 controls (newline, carriage return, escape, NUL...) and the Unicode line/paragraph
# separators some viewers break lines at
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """`text` with every control character as a Python escape (\\n, \\x1b, \\u2028)."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class OneLineFormatter(logging.Formatter):
    """A record's message is one line, whatever its arguments hold."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape(super().formatMessage(record))


def install() -> None:
    """Give every handler of the root logger the escaping formatter (same format)."""
    for h in logging.getLogger().handlers:
        fmt = h.formatter
        h.setFormatter(OneLineFormatter(fmt._fmt if fmt else None, fmt.datefmt if fmt else None))
