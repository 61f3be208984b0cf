"""One source for each data backend default: the config schema. A dataset's keys are read once into its backend's
settings record (maple.data.settings), whose defaults are the schema's; the schema checks each key before any job
starts, so the backends check none of them again; and validation leaves a backend key the config does not give out
of the dataset's spec (the synth_data job's param)."""

from __future__ import annotations

from dataclasses import MISSING, fields

import pytest
import yaml
from conftest import REPO, small_config
from maple.config.study import ConfigError
from maple.config.validation import SCHEMA_FILE, backend_keys, check_config, with_defaults
from maple.data.filters import DEFAULT_N_EVAL_PER_LANGUAGE, DEFAULT_N_TRAIN_PER_LANGUAGE
from maple.data.settings import SETTINGS, Sampling, settings_of

SCHEMA = yaml.safe_load(SCHEMA_FILE.read_text(encoding="utf-8"))
DATASET = SCHEMA["properties"]["datasets"]["additionalProperties"]


def branch(backend: str) -> dict:
    """The schema's branch of datasets.<name> for backend (allOf: if backend ... then): its keys, required ones."""
    for b in DATASET["allOf"]:
        if b["if"]["properties"]["backend"]["const"] == backend:
            return b["then"]
    raise KeyError(backend)


def schema_default(entry: dict):
    """A key's default: its own, else the one of the definition it refers to; MISSING where neither has one."""
    if "default" in entry:
        return entry["default"]
    ref = entry.get("$ref", "")
    definition = SCHEMA["definitions"].get(ref.rsplit("/", 1)[-1], {}) if ref else {}
    return definition.get("default", MISSING)


def record_default(f):
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


@pytest.mark.parametrize("backend", sorted(SETTINGS))
def test_record_defaults_are_the_schemas(backend):
    """Each field's default equals the schema's; a field without one in the schema defaults to None (worked out
    from other keys, or "none"); a required key of the schema has no meaningful default."""
    entries, required = branch(backend)["properties"], set(branch(backend).get("required", []))
    for f in fields(SETTINGS[backend]):
        if f.name == "n_per_language":
            continue  # worked out from the common keys: test_n_per_language_defaults_are_the_schemas
        assert f.name in entries, f"{backend}: field {f.name} is no key of the schema"
        default, ours = schema_default(entries[f.name]), record_default(f)
        if isinstance(ours, Sampling):
            ours = {"do_sample": ours.do_sample, "temperature": ours.temperature, "top_p": ours.top_p}
        if default is MISSING:
            assert ours is None or f.name in required, (backend, f.name, ours)
        else:
            assert ours == default, (backend, f.name, ours, default)


@pytest.mark.parametrize("backend", sorted(SETTINGS))
def test_every_schema_key_of_a_backend_is_a_field_of_its_record(backend):
    """A key the schema allows that no record reads would be accepted and silently do nothing."""
    assert set(branch(backend)["properties"]) == {f.name for f in fields(SETTINGS[backend])}


def test_n_per_language_defaults_are_the_schemas():
    props = DATASET["properties"]
    assert props["n_train_per_language"]["default"] == DEFAULT_N_TRAIN_PER_LANGUAGE
    assert props["n_eval_per_language"]["default"] == DEFAULT_N_EVAL_PER_LANGUAGE


def config_with(dataset: dict) -> dict:
    config = small_config()
    config["datasets"] = {"d": {"languages": ["en"], **dataset}}
    return config


@pytest.mark.parametrize(
    "dataset, expected",
    [
        ({"backend": "generate", "teacher": "t", "batch_size": 0}, "datasets.d.batch_size: expected a value >= 1"),
        ({"backend": "generate"}, "missing required key 'teacher'"),
        ({"backend": "generate", "teacher": "t", "sampling": {"temp": 1}}, "datasets.d.sampling: unknown key 'temp'"),
        ({"backend": "generate", "teacher": "t", "sampling": {"top_p": 0}}, "sampling.top_p: expected a value > 0"),
        ({"backend": "generate", "teacher": "t", "min_chars": "3"}, "datasets.d.min_chars: expected an integer"),
        ({"backend": "generate", "teacher": "t", "dtype": "int4"}, "datasets.d.dtype: expected one of"),
        ({"backend": "translate", "seed_data": "s", "translator": "m", "responses": "both"}, "responses: expected one"),
        ({"backend": "translate", "seed_data": "s", "translator": "m", "responses": "teacher"}, "key 'teacher'"),
        ({"backend": "translate", "seed_data": "s", "translator": "m", "seed_columns": {"x": "y"}}, "unknown key 'x'"),
        ({"backend": "hub", "dataset": "d", "n_per_language": 0}, "datasets.d.n_per_language: expected a value >= 1"),
        ({"backend": "hub", "dataset": "d", "min_script_ratio": 2}, "min_script_ratio: expected a value <= 1"),
    ],
)
def test_the_schema_checks_each_backend_key(dataset, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
        check_config(config_with(dataset), SCHEMA)


def test_validation_leaves_backend_defaults_to_the_record():
    """A backend key the config does not give stays out of the spec (the synth_data param is what the config
    says); the record reads the schema's default for it. The dataset's common keys get their defaults as before."""
    given = {"backend": "generate", "teacher": "t", "batch_size": 4}
    spec = with_defaults(config_with(given))["datasets"]["d"]
    assert set(spec) - set(given) - {"languages"} == {"n_train_per_language", "n_eval_per_language", "max_examples"}
    settings = settings_of(spec)
    assert (settings.batch_size, settings.max_new_tokens, settings.min_chars) == (4, 256, 5)
    assert backend_keys(SCHEMA)["generate"] >= {"batch_size", "max_new_tokens"}


def test_the_study_datasets_are_schema_valid():
    for name in ("maple.yaml", "smollm2.yaml"):
        config = yaml.safe_load((REPO / "config" / name).read_text(encoding="utf-8"))
        check_config(config, SCHEMA)
        for spec in with_defaults(config)["datasets"].values():
            if spec["backend"] != "template":
                settings_of(spec)
