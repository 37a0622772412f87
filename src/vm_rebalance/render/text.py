"""Text from the cluster or from an agent is data: shown escaped, on one line, length-capped.

Names, labels, failure reasons and messages come from objects anyone with write access to the
cluster can shape (a migration's failure reason, a VM's annotation, an admission webhook's
denial) or from an agent's input. Put into Markdown or a terminal as they are, they could draw a
heading, a table row, a link, an image that fetches a URL, an instruction to an agent, or move
the terminal's cursor. Every renderer passes such values through one of these:

* ``plain`` — one line: control characters (C0, C1, DEL, Unicode line and paragraph separators,
  bidirectional overrides, zero-width characters) become a space, the value is cut to a length.
  For rich ``Text`` and anything that is not Markdown.
* ``md`` — ``plain`` with Markdown neutralised: inline metacharacters escaped (emphasis, code,
  links and images, HTML, table cells, strikethrough) and a leading block marker (heading,
  list item, quote, rule) escaped, so the value is text wherever it lands on the line.
* ``code`` — an inline code span no value can break out of.
* ``markup`` — ``plain`` for strings that rich reads as console markup (``[bold]``, ``[link=…]``).
"""

import re

from rich.markup import escape

MAX_LENGTH = 300
"""Longer values are cut (with an ellipsis): a crafted reason cannot flood a report."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+")
# Escaped wherever they are: backslash, code, emphasis (*), links and images ([ ]), HTML and
# autolinks (< >), table cells (|), strikethrough (~).
_INLINE = re.compile(r"([\\`*\[\]<>|~])")
# An underscore opens or closes emphasis only next to a non-word character; `plan_hash` stays as it is.
_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
# What makes the start of a line a block with text in it: a heading, a list item or an ordered item
# (the marker, then blanks, then text), or a rule / setext underline (only '-' or '='). A lone "-"
# (a placeholder in a table) stays as it is. Quotes ('>') are escaped everywhere already.
_BLOCK_START = re.compile(r"^(#{1,6}|[-+]|\d{1,9}[.)])(?=\s+\S)|^([-=])(?=[-=\s]*[-=]$)")


def plain(value: object, *, limit: int = MAX_LENGTH) -> str:
    """One line: control and invisible formatting characters become a space, long values are cut."""
    text = _CONTROL.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def md(value: object, *, limit: int = MAX_LENGTH) -> str:
    """``plain`` as inert Markdown: shown as text, never as structure, wherever it is put on a line."""
    text = _UNDERSCORE.sub(r"\\_", _INLINE.sub(r"\\\1", plain(value, limit=limit)))
    return _BLOCK_START.sub(_escape_marker, text, count=1)


def _escape_marker(found: re.Match[str]) -> str:
    marker = found.group(0)
    # "1." is escaped before its punctuation ("1\."); '#', '-', '+', '=' before the marker.
    return marker[:-1] + "\\" + marker[-1] if marker[-1] in ".)" else "\\" + marker


def code(value: object, *, limit: int = MAX_LENGTH) -> str:
    """An inline code span that no value can break out of (backticks are dropped)."""
    return "`" + plain(value, limit=limit).replace("`", "'") + "`"


def markup(value: object, *, limit: int = MAX_LENGTH) -> str:
    """``plain`` for a string rich parses as console markup: square brackets cannot open a tag."""
    return escape(plain(value, limit=limit))
