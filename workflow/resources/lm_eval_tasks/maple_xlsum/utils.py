"""ROUGE-L for the maple_xlsum tasks, on a tokenisation that works in every XL-Sum script.

rouge_score's default tokeniser lowercases and keeps only [a-z0-9] runs, so a summary in Arabic, Devanagari, Cyrillic
or Han scores 0 whatever it says. Here a token is a run of Unicode letters, combining marks and digits (after NFKC
and case folding); scripts written without spaces between words (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar)
give one token per character. No stemming, for any language: scores are comparable across the variants of one
language, which is what the study compares, not with the language-specific ROUGE of the XL-Sum paper.
"""

from __future__ import annotations

import re
import unicodedata

from rouge_score import rouge_scorer

# Scripts written without spaces between words: one token per character.
_UNSEGMENTED = re.compile(
    "["
    "\u0e00-\u0e7f"  # Thai
    "\u0e80-\u0eff"  # Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "]"
)


class MultilingualTokenizer:
    """The rouge_score tokeniser interface (`tokenize(text) -> list[str]`)."""

    def tokenize(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFKC", text or "").casefold()
        tokens: list[str] = []
        word: list[str] = []
        after_unsegmented = False  # the previous character was a one-character token
        for ch in text:
            kind = unicodedata.category(ch)[0]
            if _UNSEGMENTED.match(ch) and kind in "LMN":
                if kind == "M" and after_unsegmented:
                    tokens[-1] += ch  # a vowel sign or tone mark stays with its base character
                    continue
                if word:
                    tokens.append("".join(word))
                    word = []
                tokens.append(ch)
                after_unsegmented = True
                continue
            after_unsegmented = False
            if kind in "LMN":
                word.append(ch)
            elif word:
                tokens.append("".join(word))
                word = []
        if word:
            tokens.append("".join(word))
        return tokens


_SCORER: rouge_scorer.RougeScorer | None = None


def rouge_l(reference: str, prediction: str) -> float:
    """ROUGE-L F1 of one prediction against one reference, 0-1."""
    global _SCORER
    if _SCORER is None:
        _SCORER = rouge_scorer.RougeScorer(["rougeL"], tokenizer=MultilingualTokenizer())
    return float(_SCORER.score(reference, prediction)["rougeL"].fmeasure)


def process_results(doc: dict, results: list[str]) -> dict:
    """lm-eval hook: the first generated line against the reference summary."""
    prediction = results[0].strip() if results else ""
    return {"rougeL": rouge_l(doc["summary"], prediction)}
