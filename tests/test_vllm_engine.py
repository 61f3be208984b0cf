"""engine: vllm, wired and checked on CPU (vLLM is not installed here, and no test runs it): the model arguments a
job gives lm-eval's vLLM model, the environment its rule names, the job's parameters, and the message where vLLM is
missing."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from conftest import REPO, small_config, write_config
from maple.evaluate.vllm_engine import SETUP_HINT, VLLMUnavailable, max_lora_rank, vllm_lm, vllm_model_args
from test_shards import planned_workflow


def args(**kw):
    base = dict(
        base_source="org/model",
        revision="abc123",
        adapter_dir=None,
        bits=16,
        lora_rank=64,
        batch_size="auto",
        max_length=4096,
        seed=1234,
    )
    return vllm_model_args(**{**base, **kw})


def test_the_grids_largest_rank_is_rounded_up_to_a_rank_vllm_takes():
    assert max_lora_rank([2, 4, 8, 16, 32, 64]) == 64
    assert max_lora_rank([4]) == 8 and max_lora_rank([33]) == 64
    with pytest.raises(ValueError, match="up to 512"):
        max_lora_rank([1024])


def test_an_adapter_is_a_lora_request_on_the_base_at_its_revision():
    a = args(adapter_dir="results/adapters/m/d/r64-q16")
    assert a["pretrained"] == "org/model" and a["revision"] == "abc123" and a["dtype"] == "bfloat16"
    assert a["lora_local_path"] == "results/adapters/m/d/r64-q16" and a["max_lora_rank"] == 64
    assert a["max_model_len"] == 4096 and "quantization" not in a
    assert "lora_local_path" not in args()  # the base model: no LoRA request


def test_a_4_bit_adapter_runs_on_vllms_bitsandbytes_base_and_8_bit_is_refused():
    assert args(bits=4, adapter_dir="a")["quantization"] == "bitsandbytes"
    with pytest.raises(ValueError, match="8-bit"):
        args(bits=8, adapter_dir="a")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_the_job_says_how_to_get_it():
    with pytest.raises(VLLMUnavailable) as error:
        vllm_lm(args())
    assert SETUP_HINT in str(error.value) and "envs/setup_vllm.sh" in str(error.value)


def test_the_vllm_environment_has_vllm_and_the_evaluation_pins():
    env = yaml.safe_load((REPO / "envs" / "vllm.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    names = {line.split("==")[0].lower() for line in pip}
    assert "vllm" in names and "lm_eval" in names and "torch" not in names  # vLLM brings its own torch
    lock = dict(line.split("==") for line in (REPO / "requirements.lock").read_text().split() if "==" in line)
    assert all(lock[name] == version for name, version in (line.split("==") for line in pip) if name in lock)
    assert (REPO / "envs" / "setup_vllm.sh").is_file()


def test_a_vllm_task_runs_in_the_vllm_environment_with_the_grids_rank(tmp_path):
    config = small_config()
    config["evaluation"]["tasks"]["demo_gen"]["engine"] = "vllm"
    with planned_workflow(write_config(tmp_path, config), tmp_path) as workflow:
        rules = {rule.name: rule for rule in workflow.rules}
        envs = {name: rule.conda_env for name, rule in rules.items() if name.startswith("evaluate_")}
        assert envs == {
            "evaluate_demo_gen_q16": "../../envs/vllm.yaml",
            "evaluate_demo_gen_q4": "../../envs/vllm.yaml",
            "evaluate_demo_mc": "../../envs/maple.yaml",
        }

        def fields(alias):
            return workflow.globals["evaluate_task"](alias).job_param()

        assert fields("demo_gen")["engine"] == "vllm" and fields("demo_gen")["lora_rank"] == 8
        assert "engine" not in fields("demo_mc")  # an hf task plans the job it always did


def test_an_engine_for_several_adapters_has_lora_enabled_and_no_adapter_of_its_own():
    a = args(enable_lora=True)
    assert a["enable_lora"] is True and "lora_local_path" not in a and a["max_lora_rank"] == 64
    assert "enable_lora" not in args(adapter_dir="a", enable_lora=True)  # lm-eval enables it from lora_local_path
