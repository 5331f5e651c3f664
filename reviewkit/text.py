"""Text normalisation shared by the stages that compare what people typed with what databases hold."""

from __future__ import annotations

import re
import unicodedata


def fold(text: object) -> str:
    """Lower case, accents and punctuation gone, single spaces: the trivial differences."""
    if text is None or (isinstance(text, float) and text != text):  # None, NaN
        return ""
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def in_sentence(label: str) -> str:
    """"Alcohol use disorder" -> "alcohol use disorder"; an acronym ("HIV ...") keeps its case."""
    return label if label[1:2].isupper() else label[:1].lower() + label[1:]
