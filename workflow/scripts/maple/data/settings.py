"""Each data backend's settings as one frozen record, built once from a dataset's config block (datasets.<name>):
`GenerateSettings`, `TranslateSettings`, `HubSettings` (`settings_of(spec)` picks by backend).

The config schema (workflow/schemas/config.schema.yaml, the backend's branch of `datasets`) holds every key's type,
bounds and default, and validation checks them before any job starts (maple.config.validation), so nothing here
checks them again. A record's field defaults are the schema's (tests/test_data_settings.py checks that they agree):
a block that never met validation (a test, a by-hand call) gets the same settings. A field whose default is None
without one in the schema is worked out from other keys (`source`, `subset_template`, `source_code`) or means
"none" (`revision`: the default branch; `seed_prompts`: the built-in examples)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from maple.data.filters import RecordFilter, n_per_language

INSTRUCTION_TEMPLATE = (
    "Write one new task instruction in {language}. It must be different from the examples, self-contained, "
    "and written entirely in {language}.\n\nExamples:\n{examples}\n\nReply with the new instruction only."
)
RESPONSE_TEMPLATE = "{instruction}\n\nAnswer in {language}."


@dataclass(frozen=True)
class Sampling:
    """A sampling block (sampling, response_sampling): generate()'s sampling arguments."""

    do_sample: bool
    temperature: float = 0.7
    top_p: float = 0.9

    def generate_kwargs(self) -> dict:
        """temperature and top_p only when sampling (greedy decoding ignores them)."""
        if not self.do_sample:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": float(self.temperature), "top_p": float(self.top_p)}


INSTRUCTION_SAMPLING = Sampling(do_sample=True)
RESPONSE_SAMPLING = Sampling(do_sample=False)


@dataclass(frozen=True)
class _Settings:
    """What every backend's record shares: the backend, the records per language, the shared filters."""

    n_per_language: int

    @classmethod
    def from_spec(cls, spec: dict):
        """The record of a dataset's config block: its keys that are fields (the others, common to every dataset,
        are read by maple.data.synthesis), n_per_language worked out (maple.data.filters.n_per_language), sampling
        blocks over their defaults."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in spec.items() if k in names}
        values["n_per_language"] = n_per_language(spec)
        for f in fields(cls):
            if isinstance(values.get(f.name), dict) and isinstance(f.default, Sampling):
                values[f.name] = replace(f.default, **values[f.name])
        return cls(**values)

    def record_filter(self, languages: dict[str, dict]) -> RecordFilter:
        return RecordFilter(languages, **{key: getattr(self, key) for key in RecordFilter.KEYS})


@dataclass(frozen=True)
class _TeacherSettings:
    """The keys of a causal LM that writes text (a teacher) and of the device it runs on."""

    teacher: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    prompt_format: str = "auto"
    response_template: str = RESPONSE_TEMPLATE
    response_sampling: Sampling = RESPONSE_SAMPLING
    min_new_tokens: int = 0
    max_new_tokens: int = 256
    device: str = "auto"
    dtype: str = "auto"


@dataclass(frozen=True)
class GenerateSettings(_TeacherSettings, _Settings):
    BACKEND = "generate"

    batch_size: int = 8
    instruction_max_new_tokens: int = 64
    sampling: Sampling = INSTRUCTION_SAMPLING
    seed_prompts: str | None = None
    n_examples: int = 3
    instruction_template: str = INSTRUCTION_TEMPLATE
    oversample: float = 1.5
    max_rounds: int = 4
    dedup: bool = True
    min_chars: int = 5
    max_chars: int | None = 2000
    script_filter: bool = True
    min_script_ratio: float = 0.5
    source: str | None = None

    @property
    def records_source(self) -> str:
        return self.source or f"generate:{self.teacher}"


@dataclass(frozen=True)
class TranslateSettings(_TeacherSettings, _Settings):
    BACKEND = "translate"

    seed_data: str | None = None
    seed_split: str = "train"
    seed_subset: str | None = None
    seed_revision: str | None = None
    seed_columns: dict = field(default_factory=dict)
    source_lang: str = "en"
    source_code: str | None = None
    translator: str | None = None
    translator_revision: str | None = None
    code_key: str = "nllb"
    responses: str = "translate"
    parallel: bool = True
    batch_size: int = 16
    max_source_tokens: int = 512
    num_beams: int = 1
    split_lines: bool = True
    oversample: float = 1.2
    max_rounds: int = 4
    dedup: bool = True
    min_chars: int = 1
    max_chars: int | None = None
    script_filter: bool = True
    min_script_ratio: float = 0.5
    source: str | None = None

    @property
    def records_source(self) -> str:
        return self.source or f"translate:{self.translator}"


@dataclass(frozen=True)
class HubSettings(_Settings):
    BACKEND = "hub"

    dataset: str | None = None
    subset_template: str | None = None
    code_key: str | None = None
    lang_column: str | None = None
    split: str = "train"
    revision: str | None = None
    data_files: str | None = None
    trust_remote_code: bool = False
    columns: dict = field(default_factory=dict)
    dedup: bool = True
    min_chars: int = 1
    max_chars: int | None = None
    script_filter: bool = False
    min_script_ratio: float = 0.5
    source: str | None = None

    @classmethod
    def from_spec(cls, spec: dict):
        """... with subset_template, where the block gives none, {code} (one subset per language) unless a language
        column tells the languages apart (then null: one table)."""
        settings = super().from_spec(spec)
        if "subset_template" not in spec and not settings.lang_column:
            settings = replace(settings, subset_template="{code}")
        return settings

    @property
    def records_source(self) -> str:
        return self.source or f"hub:{self.dataset}"


SETTINGS = {cls.BACKEND: cls for cls in (GenerateSettings, TranslateSettings, HubSettings)}


def settings_of(spec: dict):
    """The settings record of a dataset's config block, by its backend."""
    return SETTINGS[spec["backend"]].from_spec(spec)
