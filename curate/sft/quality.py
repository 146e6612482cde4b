"""Quality signals of an SFT example, each in [0, 1] (None when a signal does not apply).

- `votes`: community votes (Stack Exchange answer score, accepted answer), ranked within the pool:
  LIMA chose community answers by votes.
- `length`: the response's length against LIMA's band for Stack Exchange answers (1,200 to 4,096
  characters): 1 inside, falling on a log scale outside (0 at 20 characters and at 4x the top).
- `format`: LIMA's filters, as a score: structure (paragraphs, lists, code) and a clean ending
  help; first-person answers, references to other answers or the site ("as mentioned above",
  "edit:", "upvote"), leftover links and HTML tags hurt.
- `language`: the response is in the wanted language (lingua, low-accuracy mode).
Model scores (a reward model, a small LM's likelihood) are in `curate.sft.scorers`.
"""

from __future__ import annotations

import math
import re

import numpy as np

FIRST_PERSON = re.compile(r"\b(i|i'm|i've|i'd|i'll|me|my|mine|myself)\b", re.IGNORECASE)
REFERENCES = re.compile(
    r"(as (?:others have |someone )?(?:mentioned|said|noted|stated)|mentioned above|other answers?|"
    r"\bas @?\w+ (?:notes?|says?|said|mentioned|points? out|pointed out|wrote|suggests?)\b|"
    r"(?:above|previous|accepted|this) answer|\bedit\s*\d*\s*:|\bupdate\s*:|stack\s?exchange|\bup-?vot|\bdown-?vot|"
    r"comments? (?:below|above))",
    re.IGNORECASE,
)
URL = re.compile(r"https?://|www\.", re.IGNORECASE)
HTML_TAG = re.compile(r"</?(?:p|div|span|br|a|img|table|td|tr)\b[^>]*>", re.IGNORECASE)
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S", re.MULTILINE)
WORD = re.compile(r"\w+")


def length_score(chars: int, low: int = 1200, high: int = 4096, floor: int = 20) -> float:
    if chars <= floor:
        return 0.0
    if chars < low:
        return math.log(chars / floor) / math.log(low / floor)
    if chars > high:
        return max(0.0, 1.0 - math.log(chars / high) / math.log(4.0))
    return 1.0


def format_score(text: str) -> float:
    """Structure and cleanliness of a response (LIMA's answer filters, as a score)."""
    score = 0.5
    blocks = [b for b in text.split("\n\n") if b.strip()]
    if len(blocks) >= 2 or LIST_ITEM.search(text) or "```" in text:
        score += 0.3
    stripped = text.rstrip()
    if stripped.endswith((".", "!", "?", ")", '"', "'", "`", "*")):
        score += 0.2
    words = WORD.findall(text)
    if words and len(FIRST_PERSON.findall(text)) / len(words) > 0.02:
        score -= 0.3
    if REFERENCES.search(text):
        score -= 0.3
    if URL.search(text):
        score -= 0.2
    if HTML_TAG.search(text):
        score -= 0.2
    return min(1.0, max(0.0, score))


class LanguageScorer:
    """1.0 if a text is in `language` (ISO 639-1), 0.0 if in another, 0.5 if undecided."""

    def __init__(self, language: str):
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        self.detector = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()
        try:
            self.wanted = getattr(IsoCode639_1, language.upper())
        except AttributeError:
            raise ValueError(f"language: '{language}' is not an ISO 639-1 code") from None

    def scores(self, texts: list[str], sample_chars: int = 1000) -> list[float]:
        found = self.detector.detect_languages_in_parallel_of([t[:sample_chars] for t in texts])
        return [0.5 if lang is None else float(lang.iso_code_639_1 == self.wanted) for lang in found]


def percentile_ranks(values: np.ndarray) -> np.ndarray:
    """Each value's rank among the non-NaN values, in [0, 1] (ties share their mean rank); NaN stays NaN."""
    out = np.full(len(values), np.nan)
    valid = ~np.isnan(values)
    n = int(valid.sum())
    if n == 0:
        return out
    if n == 1:
        out[valid] = 1.0
        return out
    from scipy.stats import rankdata

    out[valid] = (rankdata(values[valid]) - 1) / (n - 1)
    return out
