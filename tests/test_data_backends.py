"""The generate, translate and hub data backends on tiny local models and datasets, their filters, and the
one-line HubAccessError for sources that cannot be had. No network: everything is built in tmp dirs."""

from __future__ import annotations

import json
import os
from pathlib import Path

# Before transformers / datasets / huggingface_hub are imported: they read these at import time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]

import pytest  # noqa: E402
import tiny_models  # noqa: E402
import torch  # noqa: E402
from maple.data import filters, translator  # noqa: E402
from maple.data.filters import RecordFilter, SpecError  # noqa: E402
from maple.data.settings import RESPONSE_TEMPLATE, GenerateSettings, HubSettings  # noqa: E402
from maple.hub.access import HubAccessError  # noqa: E402
from maple.runtime.records import INSTRUCTION_FIELDS, check_record  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one thread is ~20x faster than two contending ones. Set for this
    module's tests only and restored: at import it would hold for every test of the worker (pytest-xdist imports every
    module when it collects), and an in-process finetune compared with a Snakemake job's would run at another count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


LANGUAGES = {
    "en": {
        "name": "English",
        "script": "Latn",
        "resource": "high",
        "joshi_class": 5,
        "codes": {"nllb": "eng_Latn", "m2m100": "en", "bactrian_x": "en"},
    },
    "de": {
        "name": "German",
        "script": "Latn",
        "resource": "high",
        "joshi_class": 5,
        "codes": {"nllb": "deu_Latn", "m2m100": "de", "bactrian_x": "de"},
    },
    "ru": {
        "name": "Russian",
        "script": "Cyrl",
        "resource": "high",
        "joshi_class": 4,
        "codes": {"nllb": "rus_Cyrl", "m2m100": "ru", "bactrian_x": "ru"},
    },
    "hi": {
        "name": "Hindi",
        "script": "Deva",
        "resource": "low",
        "joshi_class": 4,
        "codes": {"nllb": "hin_Deva", "m2m100": "hi", "bactrian_x": "hi"},
    },
}


def pick(*langs):
    return {lang: LANGUAGES[lang] for lang in langs}


def assert_well_formed(records, langs, n):
    assert records, "no records"
    for record in records:
        check_record(record)
        assert set(record) == set(INSTRUCTION_FIELDS)
        assert record["instruction"].strip() and record["output"].strip()
    assert sorted({r["lang"] for r in records}) == sorted(langs)
    for lang in langs:
        assert len([r for r in records if r["lang"] == lang]) == n
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))


def assert_one_line_naming(exc: Exception, name: str):
    message = str(exc)
    assert "\n" not in message and message.strip() == message
    assert name in message


# --- filters -------------------------------------------------------------------------------------------------------


def test_script_detection():
    assert filters.script_of("a") == "Latn" and filters.script_of("ß") == "Latn"
    assert filters.script_of("я") == "Cyrl"
    assert filters.script_of("क") == "Deva"
    assert filters.script_of("ع") == "Arab"
    assert filters.script_of("海") == "Hani"
    assert filters.script_of("ሰ") == "Ethi"
    assert filters.script_of("1") is None and filters.script_of(" ") is None
    assert filters.in_script("Schreibe ein kurzes Gedicht über das Meer.", "Latn")
    assert not filters.in_script("Напиши короткое стихотворение.", "Latn")
    assert filters.in_script("Напиши короткое стихотворение о Python.", "Cyrl")
    assert filters.in_script("समुद्र के बारे में एक छोटी कविता लिखें।", "Deva")
    assert not filters.in_script("Write a short poem about the sea.", "Deva")
    assert filters.in_script("写一首关于大海的短诗。", "Hans")
    assert filters.in_script("海の詩を書いてください。", "Jpan")
    assert filters.in_script("바다에 대한 시를 써 주세요.", "Kore")
    assert filters.in_script("اكتب قصيدة قصيرة عن البحر.", "Arab")
    assert not filters.in_script("اكتب قصيدة", "Cyrl")
    # unknown script codes and texts without letters pass
    assert filters.in_script("anything at all", "Zzzz")
    assert filters.in_script("1 + 2 = 3", "Deva")
    # "mostly": the ratio threshold decides mixed text
    mixed = "Привет hello"  # 6 Cyrillic, 5 Latin letters
    assert filters.script_ratio(mixed, "Cyrl") == pytest.approx(6 / 11)
    assert filters.in_script(mixed, "Cyrl", 0.5) and not filters.in_script(mixed, "Cyrl", 0.6)


def test_normalize_and_length():
    assert filters.normalize("  Hello,   WORLD! ") == filters.normalize("hello world")
    assert filters.normalize("Ｈｅｌｌｏ") == "hello"  # NFKC folds full-width forms
    record = {"id": "x", "instruction": "abc", "input": "", "output": "abcdef", "lang": "en", "source": "t"}
    assert filters.length_ok(record, 3, 6)
    assert not filters.length_ok(record, 4, None)
    assert not filters.length_ok(record, 1, 5)
    assert not filters.length_ok({**record, "input": "x" * 7}, 1, 6)


def test_record_filter():
    def rec(instruction, output, lang="de", input_text=""):
        return {
            "id": "",
            "instruction": instruction,
            "input": input_text,
            "output": output,
            "lang": lang,
            "source": "t",
        }

    f = RecordFilter(pick("de", "ru"), dedup=True, min_chars=3, max_chars=40, script_filter=True)
    assert f.accept(rec("Schreibe ein Gedicht.", "Das Meer ist blau."))
    assert not f.accept(rec("schreibe ein  Gedicht", "Anders."))  # duplicate after normalisation
    assert f.accept(rec("Schreibe ein Gedicht.", "Anders.", input_text="über Berge"))  # other input
    assert not f.accept(rec("Schreibe ein Gedicht.", "Море синее.", lang="ru"))  # instruction not Cyrillic
    assert f.accept(rec("Напиши стихотворение.", "Море синее.", lang="ru"))
    assert not f.accept(rec("Hi", "Das Meer ist blau."))  # too short
    assert not f.accept(rec("Schreibe ein Gedicht.", "x" * 41))  # too long
    assert f.rejected == {"duplicate": 1, "script": 1, "length": 2}
    assert f.summary("ru") == "1 script" and f.summary("de") == "1 duplicate, 2 length" and f.summary("hi") == "none"
    # a dataset's filter keys over its backend's defaults (hub: dedup, min_chars 1, no max_chars, no script filter)
    g = HubSettings.from_spec({"dataset": "d", "dedup": False, "min_chars": 0}).record_filter(pick("ru"))
    assert (g.dedup, g.min_chars, g.max_chars, g.script_filter) == (False, 0, None, False)
    assert g.accept(rec("Write", "x", lang="ru")) and g.accept(rec("Write", "x", lang="ru"))
    with pytest.raises(ValueError):  # each bound on its own is the schema's to check; the two together, here
        RecordFilter(pick("ru"), min_chars=10, max_chars=5)


def test_n_per_language_and_seeds():
    assert filters.n_per_language({"n_per_language": 7}) == 7
    assert filters.n_per_language({"n_train_per_language": 10, "n_eval_per_language": 4}) == 14
    assert filters.n_per_language({}) == 160
    assert filters.language_seed(1, "de") == filters.language_seed(1, "de")
    assert filters.language_seed(1, "de") != filters.language_seed(1, "ru")
    with pytest.raises(SpecError, match="languages.de.codes.m2m100"):
        filters.language_code({"de": {"codes": {"nllb": "deu_Latn"}}}, "de", "m2m100", "translate")


# --- tiny models, built once -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return tiny_models.build_tiny_llama(tmp_path_factory.mktemp("teacher") / "llama", seed=0)


@pytest.fixture(scope="module")
def translator_dir(tmp_path_factory):
    codes = [LANGUAGES[lang]["codes"]["nllb"] for lang in ("en", "de", "ru", "hi")]
    return tiny_models.build_tiny_translator(tmp_path_factory.mktemp("translator") / "m2m", codes, seed=0)


# --- generate ------------------------------------------------------------------------------------------------------


def generate_spec(teacher, **extra):
    return {
        "backend": "generate",
        "languages": ["de", "ru"],
        "teacher": teacher,
        "n_per_language": 3,
        "batch_size": 4,
        "max_new_tokens": 8,
        "instruction_max_new_tokens": 8,
        "min_new_tokens": 6,
        "sampling": {"do_sample": True, "temperature": 1.0, "top_p": 0.95},
        "min_chars": 1,
        "script_filter": False,  # a random model writes no particular script
        "device": "cpu",
        **extra,
    }


def test_generate_real_and_deterministic(teacher_dir, tmp_path):
    from maple.data import generate

    seed_prompts = tmp_path / "seeds.jsonl"
    seed_prompts.write_text(
        "\n".join(
            json.dumps({"instruction": t, "lang": lang})
            for t, lang in [
                ("Schreibe ein Gedicht.", "de"),
                ("Erkläre den Himmel.", "de"),
                ("Напиши стихотворение.", "ru"),
                ("Give three tips.", "en"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    spec = generate_spec(teacher_dir, seed_prompts=str(seed_prompts), n_examples=2)
    first = generate.build(spec, pick("de", "ru"), seed=11)
    second = generate.build(spec, pick("de", "ru"), seed=11)
    assert_well_formed(first, ["de", "ru"], 3)
    assert first == second
    assert all(r["source"] == f"generate:{teacher_dir}" and r["input"] == "" for r in first)
    other = generate.build(spec, pick("de", "ru"), seed=12)
    assert other != first


def test_generate_with_chat_template_teacher(tmp_path):
    from maple.data import generate
    from maple.hub.access import load_tokenizer

    teacher = tiny_models.build_tiny_llama(tmp_path / "chat", seed=1, chat_template=tiny_models.CHAT_TEMPLATE)
    tokenizer = load_tokenizer(teacher)
    assert generate.resolve_prompt_format("auto", tokenizer) == "chat_template"
    prompt = generate.response_prompts([("Say hi.", "")], "German", RESPONSE_TEMPLATE, "chat_template", tokenizer)[0]
    assert prompt == "<s><|user|>\nSay hi.\n\nAnswer in German.</s>\n<|assistant|>\n"
    records = generate.build(generate_spec(teacher, n_per_language=2), pick("de"), seed=0)
    assert_well_formed(records, ["de"], 2)


def test_generate_fails_clearly_when_filters_reject_everything(teacher_dir):
    from maple.data import generate

    spec = generate_spec(teacher_dir, script_filter=True, min_script_ratio=1.0, n_per_language=1, max_rounds=1)
    amharic = {"am": {"name": "Amharic", "script": "Ethi", "codes": {}}}
    with pytest.raises(RuntimeError, match=r"no usable am record .*script"):
        generate.build(spec, amharic, seed=0)


def test_generate_prompts_and_cleaning():
    from maple.data import generate

    assert generate.clean_instruction("\n 1. Write a poem.\nSecond line") == "Write a poem."
    assert generate.clean_instruction('"Quote me"') == "Quote me"
    assert generate.clean_instruction("   \n\n") == ""
    assert generate.clean_response(" The answer.\n### Instruction:\nmore") == "The answer."
    prompts = generate.response_prompts([("Say hi.", "")], "German", RESPONSE_TEMPLATE, "plain", None)
    assert prompts == ["### Instruction:\nSay hi.\n\nAnswer in German.\n\n### Response:\n"]
    settings = GenerateSettings.from_spec({"teacher": "t", "sampling": {"temperature": 0.5}})
    assert settings.response_sampling.generate_kwargs() == {"do_sample": False}  # greedy: no temperature
    assert settings.sampling.generate_kwargs() == {"do_sample": True, "temperature": 0.5, "top_p": 0.9}


def test_generate_spec_errors(teacher_dir):
    from maple.data import generate

    with pytest.raises(SpecError, match="instruction_template"):
        generate.build(generate_spec(teacher_dir, instruction_template="{nope}"), pick("de"), 0)


# --- translate -----------------------------------------------------------------------------------------------------

SEED_DATA = [
    {"instruction": "Write a short poem about the sea.", "input": "", "output": "The sea is wide and blue."},
    {"instruction": "Explain why the sky is blue.", "input": "", "output": "Light scatters in the air."},
    {
        "instruction": "Give three tips for staying healthy.",
        "input": "",
        "output": "Eat well.\nSleep enough.\nMove every day.",
    },
    {"instruction": "Summarize the text.", "input": "The cat sat on the mat all day.", "output": "A cat rested."},
    {"instruction": "Name a fruit.", "input": "", "output": "Apple."},
    {"instruction": "Explain why the sky is blue.", "input": "", "output": "A duplicate that is dropped."},
]


def translate_spec(translator, seed_path, **extra):
    return {
        "backend": "translate",
        "languages": ["en", "de", "ru"],
        "seed_data": str(seed_path),
        "translator": translator,
        "code_key": "nllb",
        "n_per_language": 3,
        "batch_size": 4,
        "max_new_tokens": 8,
        "script_filter": False,  # a random model writes no particular script
        "device": "cpu",
        **extra,
    }


@pytest.fixture
def seed_path(tmp_path):
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(SEED_DATA), encoding="utf-8")
    return path


def test_translate_real_and_deterministic(translator_dir, seed_path):
    from maple.data import translate

    spec = translate_spec(translator_dir, seed_path)
    first = translate.build(spec, pick("en", "de", "ru"), seed=5)
    second = translate.build(spec, pick("en", "de", "ru"), seed=5)
    assert_well_formed(first, ["en", "de", "ru"], 3)
    assert first == second
    english = [r for r in first if r["lang"] == "en"]
    originals = {(s["instruction"], s["input"], s["output"]) for s in SEED_DATA}
    assert all((r["instruction"], r["input"], r["output"]) in originals for r in english)  # source: untranslated
    german = [r for r in first if r["lang"] == "de"]
    assert not any(
        (r["instruction"], r["output"]) in {(s["instruction"], s["output"]) for s in SEED_DATA} for r in german
    )
    assert [r for r in first if r["lang"] == "de"] != [r for r in first if r["lang"] == "ru"]


def test_translate_jsonl_seed_and_teacher_responses(translator_dir, teacher_dir, tmp_path):
    from maple.data import translate

    path = tmp_path / "seed.jsonl"
    path.write_text(
        "\n".join(json.dumps({"q": s["instruction"], "a": s["output"]}) for s in SEED_DATA) + "\n", encoding="utf-8"
    )
    spec = translate_spec(
        translator_dir,
        path,
        languages=["de"],
        seed_columns={"instruction": "q", "output": "a", "input": None},
        responses="teacher",
        teacher=teacher_dir,
        min_new_tokens=4,
        n_per_language=2,
    )
    first = translate.build(spec, pick("de"), seed=3)
    assert_well_formed(first, ["de"], 2)
    assert first == translate.build(spec, pick("de"), seed=3)
    assert all(r["input"] == "" for r in first)


@pytest.mark.parametrize("kind", ["nllb", "fast"])
def test_translate_forces_target_language_token(kind, translator_dir, tmp_path):
    from maple.hub.access import load_seq2seq_lm, load_tokenizer

    path = (
        translator_dir
        if kind == "nllb"
        else tiny_models.build_tiny_translator(
            tmp_path / "fast", ["eng_Latn", "deu_Latn", "rus_Cyrl"], tokenizer="fast"
        )
    )
    tokenizer = load_tokenizer(path)
    model = load_seq2seq_lm(path)
    assert type(tokenizer).__name__ == ("NllbTokenizer" if kind == "nllb" else "TokenizersBackend")
    for code in ("deu_Latn", "rus_Cyrl"):
        token_id = tokenizer.convert_tokens_to_ids(code)
        assert token_id != tokenizer.unk_token_id
        batches = translator.translate_ids(
            model, tokenizer, ["Write a poem.", "Name a fruit."], "eng_Latn", code, batch_size=2, max_new_tokens=4
        )
        assert (batches[0][:, 1] == token_id).all()  # decoder start, then the forced language token
        assert tokenizer.src_lang == "eng_Latn"
    if kind == "nllb":  # the real NLLB tokenizer marks the source language on the input
        tokenizer.src_lang = "deu_Latn"
        translator.translate_ids(model, tokenizer, ["x"], "eng_Latn", "rus_Cyrl", 1, 2)
        assert tokenizer("Write a poem.")["input_ids"][0] == tokenizer.convert_tokens_to_ids("eng_Latn")
    with pytest.raises(SpecError, match="xxx_Latn"):
        translator.language_token_id(tokenizer, "xxx_Latn")


def test_language_token_id_m2m100_style():

    class M2MStyle:  # M2M100's tokenizer: code "de" -> token "__de__"
        unk_token_id = 3
        vocab = {"__de__": 10, "__ru__": 11}

        def convert_tokens_to_ids(self, token):
            return self.vocab.get(token, self.unk_token_id)

    assert translator.language_token_id(M2MStyle(), "de") == 10
    assert translator.language_token_id(M2MStyle(), "ru") == 11


def test_translate_spec_errors(translator_dir, seed_path, tmp_path):
    from maple.data import translate

    with pytest.raises(SpecError, match="languages.ru.codes.m2m100"):
        bad = {**LANGUAGES["ru"], "codes": {"nllb": "rus_Cyrl"}}
        translate.build(translate_spec(translator_dir, seed_path, code_key="m2m100"), {"ru": bad}, 0)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "x", "output": "y"}) + "\n", encoding="utf-8")
    with pytest.raises(SpecError, match="seed_columns.instruction"):
        translate.build(translate_spec(translator_dir, rows), pick("de"), 0)


# --- hub -----------------------------------------------------------------------------------------------------------


def make_rows(lang, n):
    words = {"de": "Aufgabe", "ru": "Задача"}[lang]
    return [
        {
            "instruction": f"{words} {i}",
            "input": "" if i % 2 else f"Eingabe {i}",
            "output": f"{words} {i} ok",
            "id": str(i),
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def local_hub_dir(tmp_path_factory):
    from datasets import Dataset, DatasetDict

    root = tmp_path_factory.mktemp("hub") / "bactrian_like"
    for lang in ("de", "ru"):
        DatasetDict({"train": Dataset.from_list(make_rows(lang, 20))}).save_to_disk(str(root / lang))
    return root


def hub_spec(dataset, **extra):
    return {
        "backend": "hub",
        "languages": ["de", "ru"],
        "dataset": str(dataset),
        "subset_template": "{code}",
        "code_key": "bactrian_x",
        "split": "train",
        "n_per_language": 5,
        **extra,
    }


def test_hub_local_subsets(local_hub_dir):
    from maple.data import hub_dataset as hub

    spec = hub_spec(local_hub_dir)
    first = hub.build(spec, pick("de", "ru"), seed=1)
    assert_well_formed(first, ["de", "ru"], 5)
    assert first == hub.build(spec, pick("de", "ru"), seed=1)
    assert first != hub.build(spec, pick("de", "ru"), seed=2)
    rows = {lang: {(r["instruction"], r["input"], r["output"]) for r in make_rows(lang, 20)} for lang in ("de", "ru")}
    for record in first:
        assert (record["instruction"], record["input"], record["output"]) in rows[record["lang"]]
        assert record["source"] == f"hub:{local_hub_dir}"
    # a language's sample does not depend on which other languages the dataset has
    only_de = hub.build({**spec, "languages": ["de"]}, pick("de"), seed=1)
    assert only_de == [r for r in first if r["lang"] == "de"]


def test_hub_lang_column_and_columns(tmp_path):
    from maple.data import hub_dataset as hub

    rows = [
        {"prompt": r["instruction"], "answer": r["output"], "language": lang}
        for lang in ("de", "ru")
        for r in make_rows(lang, 6)
    ]
    path = tmp_path / "all.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    spec = {
        "dataset": str(path),
        "lang_column": "language",
        "n_per_language": 4,
        "columns": {"instruction": "prompt", "output": "answer"},
    }
    records = hub.build(spec, pick("de", "ru"), seed=0)
    assert_well_formed(records, ["de", "ru"], 4)
    assert all(r["input"] == "" for r in records)
    with pytest.raises(SpecError, match="columns.output"):
        hub.build({**spec, "columns": {"instruction": "prompt"}}, pick("de"), 0)


def test_hub_filters_apply(local_hub_dir):
    from maple.data import hub_dataset as hub

    spec = hub_spec(local_hub_dir, n_per_language=50, script_filter=True)
    # ru rows are Cyrillic, so all 20 pass; fewer than asked -> all there are, with a warning
    records = hub.build(spec, pick("ru"), seed=0)
    assert len(records) == 20
    with pytest.raises(RuntimeError, match="no usable de record"):
        hub.build(spec, {"de": {**LANGUAGES["de"], "script": "Cyrl"}}, seed=0)


# --- hub access errors ---------------------------------------------------------------------------------------------


def test_wrong_model_id_is_one_line_hub_access_error(tmp_path, seed_path):
    from maple.data import generate, translate

    bad = "nonexistent-org/definitely-not-a-model"
    with pytest.raises(HubAccessError) as info:
        generate.build(generate_spec(bad), pick("de"), 0)
    assert_one_line_naming(info.value, bad)
    assert "HF_TOKEN" in str(info.value) and "HF_HUB_OFFLINE=1" in str(info.value)
    with pytest.raises(HubAccessError) as info:
        translate.build(translate_spec(bad, seed_path), pick("de"), 0)
    assert_one_line_naming(info.value, bad)
    missing = str(tmp_path / "no" / "such" / "model")
    with pytest.raises(HubAccessError) as info:
        generate.build(generate_spec(missing), pick("de"), 0)
    assert_one_line_naming(info.value, missing)
    assert "does not exist" in str(info.value)


def test_missing_dataset_is_one_line_hub_access_error(tmp_path, local_hub_dir, translator_dir):
    from maple.data import hub_dataset as hub
    from maple.data import translate

    bad = "nonexistent-org/definitely-not-a-dataset"
    with pytest.raises(HubAccessError) as info:
        hub.build(hub_spec(bad), pick("de"), 0)
    assert_one_line_naming(info.value, bad)
    assert "HF_DATASETS_OFFLINE=1" in str(info.value)
    missing = str(tmp_path / "no_such_dir")
    with pytest.raises(HubAccessError) as info:
        hub.build(hub_spec(missing), pick("de"), 0)
    assert_one_line_naming(info.value, missing)
    with pytest.raises(HubAccessError) as info:  # a local directory without the subset
        hub.build(hub_spec(local_hub_dir), pick("hi"), 0)
    assert_one_line_naming(info.value, "'hi'")
    with pytest.raises(HubAccessError) as info:  # the seed data of translate
        translate.build(translate_spec(translator_dir, bad), pick("de"), 0)
    assert_one_line_naming(info.value, bad)


def test_hub_access_functions(tmp_path):
    from maple.hub import access as hub_access

    assert hub_access.looks_like_local_path("/abs/path") and hub_access.looks_like_local_path("./rel")
    assert not hub_access.looks_like_local_path("org/name")
    from types import SimpleNamespace

    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    def response(status):  # what a hub error reads of its HTTP response
        return SimpleNamespace(status_code=status, headers={}, request=None)

    # what transformers raises: its own OSError from huggingface_hub's typed error, which says what went wrong
    reasons = {
        LocalEntryNotFoundError("not in the cache"): "offline mode is on",  # the tests run offline
        GatedRepoError("access restricted", response=response(401)): "gated or private",
        HfHubHTTPError("forbidden", response=response(403)): "gated or private",
        RepositoryNotFoundError("not found", response=response(404)): "no such repository",
        HfHubHTTPError("not found", response=response(404)): "no such repository",
    }
    for cause, reason in reasons.items():
        with pytest.raises(HubAccessError) as info:
            with hub_access.hub_access("model", "org/name"):
                raise OSError("We couldn't connect to 'https://huggingface.co'\nsecond line") from cause
        assert_one_line_naming(info.value, "'org/name'")
        assert reason in str(info.value)
    with pytest.raises(HubAccessError) as info:  # no typed cause: the message's first words, on one line
        with hub_access.hub_access("model", "org/name"):
            raise OSError("disk full\nsecond line")
    assert "disk full second line" in str(info.value)
    with pytest.raises(ValueError):  # not an access problem: passes through
        with hub_access.hub_access("model", "org/name"):
            raise ValueError("bad config")
    import inspect

    for loader in (
        hub_access.load_tokenizer,
        hub_access.load_causal_lm,
        hub_access.load_seq2seq_lm,
        hub_access.load_dataset,
    ):
        assert inspect.signature(loader).parameters["trust_remote_code"].default is False


# --- parts (rule synth_part) ---------------------------------------------------------------------------------------


def test_parts_of_a_model_written_dataset_are_the_whole(teacher_dir, translator_dir, seed_path):
    """Each language is seeded on its own: the records of a dataset built in parts of its languages (synth_part
    jobs, maple.data.synthesis.build_part) are, language by language, those of one build."""
    from maple.data.synthesis import build_part

    def by_lang(records):
        return {lang: [r for r in records if r["lang"] == lang] for lang in {r["lang"] for r in records}}

    specs = [
        generate_spec(teacher_dir, languages=["de", "en", "ru"]),
        translate_spec(translator_dir, seed_path, languages=["de", "en", "ru"]),
    ]
    for spec in specs:
        whole = build_part(spec, LANGUAGES, 7, ["de", "en", "ru"])
        parts = build_part(spec, LANGUAGES, 7, ["ru"]) + build_part(spec, LANGUAGES, 7, ["de", "en"])
        assert by_lang(parts) == by_lang(whole) and set(by_lang(whole)) == {"de", "en", "ru"}, spec["backend"]
