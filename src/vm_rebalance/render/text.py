"""Text from the cluster or from an agent is data: shown escaped, on one line, length-capped.

Names, labels, failure reasons and messages come from objects anyone with write access to the
cluster can shape (a migration's failure reason, a VM's annotation) or from an agent's input.
Put into Markdown or a terminal as they are, they could draw a heading, a table row, a link or
an instruction to an agent. ``md`` makes such a value inert Markdown; ``plain`` a single safe line.
"""

import re

MAX_LENGTH = 300
"""Longer values are cut (with an ellipsis): a crafted reason cannot flood a report."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~])")


def plain(value: object, *, limit: int = MAX_LENGTH) -> str:
    """One line: control characters and newlines become a space, long values are cut."""
    text = _CONTROL.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def md(value: object, *, limit: int = MAX_LENGTH) -> str:
    """``plain`` with the inline Markdown metacharacters escaped (emphasis, code, links, HTML, table
    cells): shown as text, never as structure. Being one line, it cannot start a heading or a list."""
    return _MARKDOWN.sub(r"\\\1", plain(value, limit=limit))


def code(value: object, *, limit: int = MAX_LENGTH) -> str:
    """An inline code span that no value can break out of (backticks are dropped)."""
    return "`" + plain(value, limit=limit).replace("`", "'") + "`"
