"""The offline `template` data backend: determinism, counts, record format, held-out eval, corpus coverage, errors."""

import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

from maple.data.template import all_items, load_lexicon, make_dataset, pretraining_corpus  # noqa: E402
from maple.runtime.records import INSTRUCTION_FIELDS, check_record  # noqa: E402

LEXICONS = ROOT / "workflow" / "resources" / "lexicons"
LANGUAGES = ["en", "de", "ru", "zh", "ar", "hi", "sw"]
SCRIPTS = {  # script -> a character class of it
    "Latin": r"[A-Za-z]",
    "Cyrillic": r"[\u0400-\u04FF]",
    "Devanagari": r"[\u0900-\u097F]",
    "Arabic": r"[\u0600-\u06FF]",
    "Han": r"[\u4E00-\u9FFF]",
}


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(LANGUAGES, n_train=120, n_eval=40, seed=1234, lexicon_dir=LEXICONS)


def _eval_sets(dataset):
    for kind in ("eval_mc", "eval_gen"):
        yield from dataset[kind].items()


def test_same_seed_same_output_and_other_seed_differs(dataset):
    assert make_dataset(LANGUAGES, 120, 40, 1234, LEXICONS) == dataset
    assert make_dataset(LANGUAGES, 120, 40, 99, LEXICONS) != dataset
    corpus = pretraining_corpus(LANGUAGES, LEXICONS, seed=1, n_sentences_per_language=50)
    assert pretraining_corpus(LANGUAGES, LEXICONS, seed=1, n_sentences_per_language=50) == corpus
    assert pretraining_corpus(LANGUAGES, LEXICONS, seed=2, n_sentences_per_language=50) != corpus


def test_every_language_with_the_requested_counts(dataset):
    assert len(dataset["train"]) == 120 * len(LANGUAGES)
    for lang in LANGUAGES:
        assert sum(r["lang"] == lang for r in dataset["train"]) == 120
    for kind in ("eval_mc", "eval_gen"):
        assert sorted(dataset[kind]) == sorted(LANGUAGES)
        assert all(len(records) == 40 for records in dataset[kind].values())


def test_record_format(dataset):
    records = dataset["train"] + [r for _, recs in _eval_sets(dataset) for r in recs]
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)
    for record in records:
        check_record(record)
        assert record["source"] == "template" and record["input"] == "" and record["output"]
        assert re.fullmatch(rf"template-{record['lang']}-\d{{5}}", record["id"])
    for record in dataset["train"] + [r for recs in dataset["eval_gen"].values() for r in recs]:
        assert set(record) == set(INSTRUCTION_FIELDS)
    for lang, records in dataset["eval_mc"].items():
        for record in records:
            assert record["lang"] == lang
            choices, label = record["choices"], record["label"]
            assert isinstance(label, int) and 0 <= label < 4
            assert len(choices) == 4 == len(set(choices)) and all(isinstance(c, str) for c in choices)
            assert choices[label] == record["output"]


def test_eval_is_held_out_but_asks_trained_facts(dataset):
    for lang, records in _eval_sets(dataset):
        train = [r for r in dataset["train"] if r["lang"] == lang]
        train_instructions = {r["instruction"] for r in train}
        assert not train_instructions & {r["instruction"] for r in records}
        assert len({r["instruction"] for r in records}) == len(records)
        # Same facts, new phrasing: every eval answer is also a training answer.
        assert {r["output"] for r in records} <= {r["output"] for r in train}


def test_mc_and_gen_ask_the_same_questions(dataset):
    for lang in LANGUAGES:
        mc = [r["instruction"] for r in dataset["eval_mc"][lang]]
        assert mc == [r["instruction"] for r in dataset["eval_gen"][lang]]


def test_small_request_and_train_repeats_when_pool_is_small():
    data = make_dataset(["en"], n_train=1000, n_eval=5, seed=0, lexicon_dir=LEXICONS)
    assert len(data["train"]) == 1000 and len(data["eval_gen"]["en"]) == 5
    train = {r["instruction"] for r in data["train"]}
    assert not train & {r["instruction"] for r in data["eval_gen"]["en"]}


def test_too_many_eval_items_names_language_and_numbers():
    with pytest.raises(ValueError, match=r"'sw'.*\b171\b.*\b500\b"):
        make_dataset(["sw"], n_train=10, n_eval=500, seed=0, lexicon_dir=LEXICONS)


def test_all_items_cover_every_family_and_template():
    for lang in LANGUAGES:
        lexicon = load_lexicon(lang, LEXICONS)
        items = all_items(lang, lexicon)
        assert len({r["id"] for r in items}) == len(items)
        assert len({r["instruction"] for r in items}) == len(items)
        for family, spec in lexicon["families"].items():
            indices = {r["template_index"] for r in items if r["family"] == family}
            assert indices == set(range(len(spec["templates"]))) and len(indices) >= 3
        assert all("{" not in r["instruction"] for r in items)


def test_corpus_covers_every_script_and_has_no_instruction_format():
    corpus = pretraining_corpus(LANGUAGES, LEXICONS, seed=0, n_sentences_per_language=60)
    assert len(corpus) == 60 * len(LANGUAGES)
    text = "\n".join(corpus)
    for script, chars in SCRIPTS.items():
        assert re.search(chars, text), f"no {script} characters in the corpus"
    assert "{" not in text and "###" not in text
    assert any("seven, eight, nine" in s for s in pretraining_corpus(["en"], LEXICONS, 0, 200))


def _broken_lexicon(tmp_path, edit) -> Path:
    shutil.copy(LEXICONS / "en.yaml", tmp_path / "en.yaml")
    data = yaml.safe_load((tmp_path / "en.yaml").read_text(encoding="utf-8"))
    edit(data)
    (tmp_path / "en.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda d: d["families"]["opposite"].pop("pairs"), "families.opposite.pairs"),
        (lambda d: d.pop("number_words"), "number_words"),
        (
            lambda d: d["families"]["addition"].update(templates=["What is {a} plus {b}?"]),
            "families.addition.templates",
        ),
        (
            lambda d: d["families"]["object_colour"]["templates"].append("Is {colour} right?"),
            "families.object_colour.templates",
        ),
        (lambda d: d["families"]["opposite"]["pairs"].append(["big", "tiny"]), "families.opposite.pairs"),
    ],
)
def test_malformed_lexicon_names_the_file_and_key(tmp_path, edit, key):
    lexicon_dir = _broken_lexicon(tmp_path, edit)
    with pytest.raises(ValueError, match=re.escape(key)) as err:
        load_lexicon("en", lexicon_dir)
    assert "en.yaml" in str(err.value)


def test_unknown_language_is_named():
    with pytest.raises(FileNotFoundError, match="'xx'"):
        make_dataset(["en", "xx"], 10, 5, 0, LEXICONS)
    with pytest.raises(FileNotFoundError, match="'xx'"):
        pretraining_corpus(["xx"], LEXICONS, 0, 10)
