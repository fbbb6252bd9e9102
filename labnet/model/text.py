"""Text written in YAML for people: walkthroughs and challenges, in English and Chinese."""

from __future__ import annotations

import re

# a CJK character or CJK/full-width punctuation
_CJK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef"
_CJK_GAP = re.compile(f"(?<=[{_CJK}])\\s+(?=[{_CJK}])")


def joined(text: str) -> str:
    """YAML folds a wrapped line into a space; written Chinese has none between its
    characters, so the space goes where both neighbours are CJK (`子网内，所以`)."""
    return _CJK_GAP.sub("", text)
