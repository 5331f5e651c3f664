"""One redaction step for every text that leaves the process, and short excerpts for messages.

NCBI credentials travel in the environment (``NCBI_EMAIL``, ``NCBI_API_KEY``) and
in request URLs (``email=``, ``api_key=``). Whatever goes to a terminal, a log, a
run manifest, an executed notebook or a report passes through :func:`redact`,
which removes their values (as written and as URL-encoded) and the values of
those URL parameters. Messages about a bad file quote it through
:func:`excerpt`: redacted, control characters escaped, cut short, so a hostile
file (a link to ``/proc/self/environ``, a megabyte on one line) cannot put
secrets or a flood on the screen.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

#: Environment variables whose values are never shown.
SECRET_VARIABLES = ("NCBI_API_KEY", "NCBI_EMAIL")
MASK = "[redacted]"
# Shorter values would mask ordinary words; NCBI keys are 36 characters, e-mail addresses at least 6.
_MIN_SECRET = 6
_URL_SECRET = re.compile(r"(?i)\b(api_key|email)=[^&\s'\"<>]+")


def secret_values(extra: Iterable[str | None] = ()) -> list[str]:
    """The values to hide: the secret variables' current values and ``extra``, as written and URL-encoded."""
    raw = {v for v in (*(os.environ.get(name) for name in SECRET_VARIABLES), *extra) if v and len(v) >= _MIN_SECRET}
    forms = raw | {quote(v, safe="") for v in raw} | {quote_plus(v) for v in raw}
    return sorted(forms, key=len, reverse=True)  # longest first: a value may contain another


def redact(text: str, extra: Iterable[str | None] = ()) -> str:
    """``text`` without credential values (environment, ``extra``) or ``api_key=``/``email=`` URL values."""
    for value in secret_values(extra):
        text = text.replace(value, MASK)
    return _URL_SECRET.sub(rf"\1={MASK}", text)


def excerpt(value: object, limit: int = 60, *, quoted: bool = True) -> str:
    """``value`` as a message quotes it: redacted, then cut to ``limit`` characters, then repr'd
    (so control characters show as escapes and cannot rewrite the terminal); ``quoted=False``
    leaves out the quotation marks around it."""
    text = redact(str(value))
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text)} characters)"
    shown = repr(text)
    return shown if quoted else shown[1:-1]


class RedactingFormatter(logging.Formatter):
    """A log formatter whose output (message, arguments and any traceback) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
