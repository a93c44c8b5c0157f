"""How the rules read a text: in NFC, with a word of a script written without spaces set
apart from the Latin word beside it.

- NFC: "naïve Bayes" typed decomposed (i + U+0308, as macOS and some keyboards give it)
  is a different string of words from the composed one; a custom domain's examples read
  from a decomposed file never shared a word with a composed query (hostile-18).
- Chinese and Japanese are written without spaces, and Korean joins its particles to the
  word before: "请帮我写一个Python函数" and "Python으로 함수를 작성해줘" hold "Python" inside
  one run of word characters, so neither a term ("python") nor a shape's ``\\b`` found it
  and both were general (hostile-18). A space between such a letter and a Latin letter or
  digit makes the Latin word a word again; the text's own words are left as they are.

ASCII text (nearly every query) is returned as it is, with no scan.
"""

from __future__ import annotations

import re
import unicodedata

# Han (and its extensions and compatibility forms), kana, Hangul, Thai, Lao, Myanmar, Khmer
_SPACELESS = ("\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u3040-\u30ff\u3130-\u318f"
              "\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff66-\uff9f"
              "\U00020000-\U0003134f")
_EDGE = re.compile(rf"(?<=[{_SPACELESS}])(?=[^\W{_SPACELESS}])|(?<=[^\W{_SPACELESS}])(?=[{_SPACELESS}])")


def rule_text(text: str) -> str:
    """``text`` as the rules read it (see the module docstring)."""
    if text.isascii():
        return text
    return _EDGE.sub(" ", unicodedata.normalize("NFC", text))
