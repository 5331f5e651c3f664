"""Text normalisation shared by the stages that compare what people typed with what databases hold."""

from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[^0-9a-z]+")


def fold(text: object) -> str:
    """Lower case, accents and punctuation gone, single spaces: the trivial differences."""
    if text is None or (isinstance(text, float) and text != text):  # None, NaN
        return ""
    text = str(text)
    if not text.isascii():  # ASCII has no accents to take apart: most text skips this (3x faster)
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def in_sentence(label: str) -> str:
    """"Alcohol use disorder" -> "alcohol use disorder"; an acronym ("HIV ...") keeps its case."""
    return label if label[1:2].isupper() else label[:1].lower() + label[1:]
