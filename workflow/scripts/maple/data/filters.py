"""Quality filters shared by the data backends: deduplication, a length filter and a script filter.

Filter keys of a dataset's config block (each backend's defaults: maple.data.settings):
  dedup: bool              drop a record whose normalised (instruction, input) was already kept for its language
  min_chars: int           instruction and output must each have at least this many characters (after strip)
  max_chars: int | null    ... and at most this many (input too); null: no upper bound
  script_filter: bool      instruction and output must each be mostly written in the language's script
  min_script_ratio: float  "mostly": the share of letters in that script, 0-1

Script detection works on Unicode code-point ranges of the letters (general category L*) of a text, for the
common ISO 15924 scripts in SCRIPT_RANGES; Hans/Hant map to Han, Jpan to Han+Hiragana+Katakana, Kore to
Hangul+Han. A language whose script is not in the table, and a text without letters, pass the filter.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections import Counter

SCRIPT_RANGES: dict[str, list[tuple[int, int]]] = {
    "Latn": [
        (0x41, 0x5A),
        (0x61, 0x7A),
        (0xAA, 0xAA),
        (0xBA, 0xBA),
        (0xC0, 0x24F),
        (0x250, 0x2AF),
        (0x1D00, 0x1D7F),
        (0x1E00, 0x1EFF),
        (0x2C60, 0x2C7F),
        (0xA720, 0xA7FF),
        (0xAB30, 0xAB6F),
        (0xFF21, 0xFF3A),
        (0xFF41, 0xFF5A),
    ],
    "Grek": [(0x370, 0x3FF), (0x1F00, 0x1FFF)],
    "Cyrl": [(0x400, 0x52F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F)],
    "Armn": [(0x530, 0x58F), (0xFB13, 0xFB17)],
    "Hebr": [(0x590, 0x5FF), (0xFB1D, 0xFB4F)],
    "Arab": [(0x600, 0x6FF), (0x750, 0x77F), (0x870, 0x8FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)],
    "Syrc": [(0x700, 0x74F)],
    "Thaa": [(0x780, 0x7BF)],
    "Nkoo": [(0x7C0, 0x7FF)],
    "Deva": [(0x900, 0x97F), (0xA8E0, 0xA8FF)],
    "Beng": [(0x980, 0x9FF)],
    "Guru": [(0xA00, 0xA7F)],
    "Gujr": [(0xA80, 0xAFF)],
    "Orya": [(0xB00, 0xB7F)],
    "Taml": [(0xB80, 0xBFF)],
    "Telu": [(0xC00, 0xC7F)],
    "Knda": [(0xC80, 0xCFF)],
    "Mlym": [(0xD00, 0xD7F)],
    "Sinh": [(0xD80, 0xDFF)],
    "Thai": [(0xE00, 0xE7F)],
    "Laoo": [(0xE80, 0xEFF)],
    "Tibt": [(0xF00, 0xFFF)],
    "Mymr": [(0x1000, 0x109F), (0xA9E0, 0xA9FF), (0xAA60, 0xAA7F)],
    "Geor": [(0x10A0, 0x10FF), (0x1C90, 0x1CBF), (0x2D00, 0x2D2F)],
    "Hang": [(0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xFFA0, 0xFFDF)],
    "Ethi": [(0x1200, 0x139F), (0x2D80, 0x2DDF), (0xAB00, 0xAB2F)],
    "Cher": [(0x13A0, 0x13FF), (0xAB70, 0xABBF)],
    "Cans": [(0x1400, 0x167F), (0x18B0, 0x18FF)],
    "Khmr": [(0x1780, 0x17FF), (0x19E0, 0x19FF)],
    "Mong": [(0x1800, 0x18AF)],
    "Tfng": [(0x2D30, 0x2D7F)],
    "Hira": [(0x3040, 0x309F)],
    "Kana": [(0x30A0, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F)],
    "Bopo": [(0x3100, 0x312F), (0x31A0, 0x31BF)],
    "Hani": [
        (0x2E80, 0x2FDF),
        (0x3005, 0x3007),
        (0x3021, 0x3029),
        (0x3038, 0x303B),
        (0x3400, 0x4DBF),
        (0x4E00, 0x9FFF),
        (0xF900, 0xFAFF),
        (0x20000, 0x3134F),
    ],
}

# Scripts of the config's languages table that are unions of the detectable ones.
SCRIPT_ALIASES: dict[str, tuple[str, ...]] = {
    "Hans": ("Hani",),
    "Hant": ("Hani",),
    "Jpan": ("Hani", "Hira", "Kana"),
    "Kore": ("Hang", "Hani"),
}

_TABLE = sorted((start, end, script) for script, ranges in SCRIPT_RANGES.items() for start, end in ranges)
_STARTS = [start for start, _, _ in _TABLE]


def script_of(char: str) -> str | None:
    """The ISO 15924 code of one character, from SCRIPT_RANGES; None when not covered."""
    cp = ord(char)
    i = bisect.bisect_right(_STARTS, cp) - 1
    if i >= 0 and _TABLE[i][0] <= cp <= _TABLE[i][1]:
        return _TABLE[i][2]
    return None


def known_script(script: str) -> bool:
    return script in SCRIPT_RANGES or script in SCRIPT_ALIASES


def script_ratio(text: str, script: str) -> float | None:
    """Share of the letters of text that belong to script; None when the text has no letters or the script is
    not detectable."""
    if not known_script(script):
        return None
    accepted = set(SCRIPT_ALIASES.get(script, (script,)))
    letters = [c for c in text if unicodedata.category(c).startswith("L")]
    if not letters:
        return None
    return sum(script_of(c) in accepted for c in letters) / len(letters)


def in_script(text: str, script: str, min_ratio: float = 0.5) -> bool:
    """True when at least min_ratio of the letters of text are in script (unknown scripts and no letters pass)."""
    ratio = script_ratio(text, script)
    return ratio is None or ratio >= min_ratio


def normalize(text: str) -> str:
    """The dedup key of a text: NFKC, case-folded, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return " ".join(text.split())


def length_ok(record: dict, min_chars: int = 1, max_chars: int | None = None) -> bool:
    for field in ("instruction", "output"):
        n = len(record[field].strip())
        if n < min_chars or (max_chars is not None and n > max_chars):
            return False
    return max_chars is None or len(record["input"].strip()) <= max_chars


class RecordFilter:
    """Stateful filter over a stream of records of several languages: `accept(record)` says whether to keep it
    (and remembers it for dedup); `rejected` counts the reasons for dropping, `rejected_by_lang` per language."""

    def __init__(
        self,
        languages: dict[str, dict],
        dedup: bool = True,
        min_chars: int = 1,
        max_chars: int | None = None,
        script_filter: bool = False,
        min_script_ratio: float = 0.5,
    ):
        if max_chars is not None and max_chars < min_chars:  # the schema checks each on its own
            raise ValueError(f"filters: need min_chars <= max_chars, got min_chars={min_chars}, max_chars={max_chars}")
        self.languages = languages
        self.dedup = dedup
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.script_filter = script_filter
        self.min_script_ratio = min_script_ratio
        self.seen: set[tuple[str, str, str]] = set()
        self.rejected: Counter = Counter()
        self.rejected_by_lang: dict[str, Counter] = {}

    KEYS = ("dedup", "min_chars", "max_chars", "script_filter", "min_script_ratio")

    def _reject(self, record: dict, reason: str) -> bool:
        self.rejected[reason] += 1
        self.rejected_by_lang.setdefault(record["lang"], Counter())[reason] += 1
        return False

    def accept(self, record: dict) -> bool:
        if not length_ok(record, self.min_chars, self.max_chars):
            return self._reject(record, "length")
        if self.script_filter:
            script = self.languages.get(record["lang"], {}).get("script", "")
            if not all(in_script(record[f], script, self.min_script_ratio) for f in ("instruction", "output")):
                return self._reject(record, "script")
        if self.dedup:
            key = (record["lang"], normalize(record["instruction"]), normalize(record["input"]))
            if key in self.seen:
                return self._reject(record, "duplicate")
            self.seen.add(key)
        return True

    def summary(self, lang: str | None = None) -> str:
        """e.g. "2 duplicate, 5 length" for one language (or all)."""
        counts = self.rejected if lang is None else self.rejected_by_lang.get(lang, Counter())
        return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or "none"


# --- Reading a dataset's config block ----------------------------------------------------------------------------

# the config schema's defaults of datasets.<name>.n_train_per_language and n_eval_per_language (tests check them)
DEFAULT_N_TRAIN_PER_LANGUAGE = 120
DEFAULT_N_EVAL_PER_LANGUAGE = 40


class SpecError(ValueError):
    """A dataset's config block does not fit its data or its languages table; the message names the key."""


def n_per_language(spec: dict) -> int:
    """spec["n_per_language"], else n_train_per_language + n_eval_per_language (the synth stage splits them)."""
    if "n_per_language" in spec:
        return int(spec["n_per_language"])
    return int(spec.get("n_train_per_language", DEFAULT_N_TRAIN_PER_LANGUAGE)) + int(
        spec.get("n_eval_per_language", DEFAULT_N_EVAL_PER_LANGUAGE)
    )


def language_code(languages: dict[str, dict], lang: str, code_key: str, backend: str) -> str:
    """languages[lang]["codes"][code_key], or a SpecError naming the missing key."""
    code = (languages.get(lang) or {}).get("codes", {}).get(code_key)
    if not isinstance(code, str) or not code:
        raise SpecError(
            f"{backend} backend: languages.{lang}.codes.{code_key} is missing: add the {code_key} "
            f"code of {lang} to the languages table"
        )
    return code


def language_seed(seed: int, lang: str, *salt) -> int:
    """A seed for one language (and step), independent of which other languages the dataset has."""
    import zlib

    return zlib.crc32(":".join(str(part) for part in (seed, lang, *salt)).encode("utf-8"))
