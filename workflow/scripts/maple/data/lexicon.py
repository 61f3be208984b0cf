"""The lexicons of the template backend (workflow/resources/lexicons/<lang>.yaml): small fact families -- number
words, the next number, small sums, object colours, opposites -- each with native instruction templates and
statements; loaded and checked, each error naming the file and key."""

from __future__ import annotations

import re
import string
from pathlib import Path

import yaml

N_NUMBERS = 21  # number words for 0..20
ADDITION_MAX_OPERAND = 10  # operands 1..10, so every sum (<= 20) has a number word
MIN_TEMPLATES = 3
N_CHOICES = 4  # answers of a multiple-choice question, so each family needs as many distinct ones

# family -> (placeholders an instruction template may use, the placeholder holding the answer)
FAMILIES: dict[str, tuple[frozenset[str], str]] = {
    "number_word": (frozenset({"digit"}), "word"),
    "next_number": (frozenset({"word", "digit"}), "next"),
    "addition": (frozenset({"a", "b", "a_digit", "b_digit"}), "sum"),
    "object_colour": (frozenset({"object"}), "colour"),
    "opposite": (frozenset({"word"}), "opposite"),
}
_LANG_CODE = re.compile(r"^[a-z]{2,3}$")


# --- loading and checking a lexicon ---------------------------------------------------------------------------------


def lexicon_path(lang: str, lexicon_dir: str | Path) -> Path:
    return Path(lexicon_dir) / f"{lang}.yaml"


def load_lexicon(lang: str, lexicon_dir: str | Path) -> dict:
    """Read and check `<lexicon_dir>/<lang>.yaml`; errors name the file and the offending key."""
    if not isinstance(lang, str) or not _LANG_CODE.match(lang):
        raise ValueError(f"language {lang!r}: expected a 2-3 letter lower-case ISO code")
    path = lexicon_path(lang, lexicon_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no lexicon for language {lang!r}: {path} does not exist")
    with open(path, encoding="utf-8") as f:
        try:
            lexicon = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML: {err}") from err
    _check_lexicon(lexicon, lang, path)
    return lexicon


def _fail(path: Path, key: str, expected: str) -> ValueError:
    return ValueError(f"{path}: key {key!r}: {expected}")


def _require(lexicon: dict, key: str, kind: type, path: Path):
    """The value at a dotted key, or a ValueError naming the key when it is missing or of the wrong type."""
    node = lexicon
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise _fail(path, key, "missing")
        node = node[part]
    if not isinstance(node, kind):
        raise _fail(path, key, f"expected a {kind.__name__}, got {type(node).__name__}")
    return node


def _require_strings(lexicon: dict, key: str, path: Path, min_len: int) -> list[str]:
    values = _require(lexicon, key, list, path)
    if len(values) < min_len or not all(isinstance(v, str) and v.strip() for v in values):
        raise _fail(path, key, f"expected a list of at least {min_len} non-empty strings")
    return values


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _check_lexicon(lexicon: object, lang: str, path: Path) -> None:
    if not isinstance(lexicon, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    if _require(lexicon, "language", str, path) != lang:
        raise _fail(path, "language", f"expected {lang!r}, the file's name, got {lexicon['language']!r}")
    _require(lexicon, "list_separator", str, path)
    words = _require_strings(lexicon, "number_words", path, N_NUMBERS)
    if len(words) != N_NUMBERS or len(set(words)) != N_NUMBERS:
        raise _fail(path, "number_words", f"expected {N_NUMBERS} distinct words, for 0..{N_NUMBERS - 1}")
    families = _require(lexicon, "families", dict, path)
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise _fail(path, f"families.{unknown[0]}", f"unknown family; expected one of {sorted(FAMILIES)}")
    for family, (asked, answer) in FAMILIES.items():
        for key, allowed in (("templates", asked), ("statements", asked | {answer})):
            dotted = f"families.{family}.{key}"
            texts = _require_strings(lexicon, dotted, path, MIN_TEMPLATES if key == "templates" else 1)
            for text in texts:
                try:
                    used = _placeholders(text)
                except ValueError as err:
                    raise _fail(path, dotted, f"bad placeholder syntax in {text!r}: {err}") from err
                if not used <= allowed:
                    raise _fail(path, dotted, f"{text!r} uses {sorted(used - allowed)}; allowed: {sorted(allowed)}")
                if key == "templates" and not used:
                    raise _fail(path, dotted, f"{text!r} has no placeholder")
            if len(set(texts)) != len(texts):
                raise _fail(path, dotted, "templates repeat")
    _check_items(lexicon, path)
    _check_pairs(lexicon, path)
    for family in FAMILIES:
        if len({fact[FAMILIES[family][1]] for fact in facts(family, lexicon)}) < N_CHOICES:
            raise _fail(path, f"families.{family}", f"needs at least {N_CHOICES} distinct answers for multiple choice")


def _check_items(lexicon: dict, path: Path) -> None:
    key = "families.object_colour.items"
    items = _require(lexicon, key, list, path)
    for i, item in enumerate(items):
        if not (
            isinstance(item, dict)
            and all(isinstance(item.get(k), str) and item[k].strip() for k in ("object", "colour"))
        ):
            raise _fail(path, f"{key}[{i}]", "expected a mapping with string 'object' and 'colour'")
    if len({item["object"] for item in items}) != len(items):
        raise _fail(path, key, "objects repeat")


def _check_pairs(lexicon: dict, path: Path) -> None:
    key = "families.opposite.pairs"
    pairs = _require(lexicon, key, list, path)
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(w, str) and w.strip() for w in pair)):
            raise _fail(path, f"{key}[{i}]", "expected a list of two words")
    words = [w for pair in pairs for w in pair]
    # Both directions become questions, so a word in two pairs would have two right answers.
    if len(set(words)) != len(words):
        raise _fail(path, key, "a word occurs twice, which makes its opposite ambiguous")


def facts(family: str, lexicon: dict) -> list[dict[str, str]]:
    """The facts of one family in a fixed order: placeholder values, the answer, and a stable `key`."""
    words = lexicon["number_words"]
    families = lexicon["families"]
    if family == "number_word":
        return [{"key": str(n), "digit": str(n), "word": words[n]} for n in range(N_NUMBERS)]
    if family == "next_number":
        return [{"key": str(n), "digit": str(n), "word": words[n], "next": words[n + 1]} for n in range(N_NUMBERS - 1)]
    if family == "addition":
        return [
            {"key": f"{a}+{b}", "a": words[a], "b": words[b], "a_digit": str(a), "b_digit": str(b), "sum": words[a + b]}
            for a in range(1, ADDITION_MAX_OPERAND + 1)
            for b in range(1, ADDITION_MAX_OPERAND + 1)
        ]
    if family == "object_colour":
        return [
            {"key": item["object"], "object": item["object"], "colour": item["colour"]}
            for item in families["object_colour"]["items"]
        ]
    if family == "opposite":
        return [
            {"key": word, "word": word, "opposite": other}
            for pair in families["opposite"]["pairs"]
            for word, other in (pair, pair[::-1])
        ]
    raise ValueError(f"unknown family {family!r}; expected one of {sorted(FAMILIES)}")
