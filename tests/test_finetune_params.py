"""One source for each finetune default: the config schema. The FinetuneParams dataclass and the by-hand CLI
(workflow/scripts/finetune.py) carry the same defaults, so a finetune run by hand trains what the rule trains."""

from __future__ import annotations

from dataclasses import MISSING, asdict, fields

import finetune as finetune_script
from conftest import small_config
from maple.config.validation import checked_study
from maple.train.params import RULE_KEYS, FinetuneParams, micro_batch_for_attempt, rule_params, schema_entries


def test_dataclass_defaults_are_the_schemas():
    entries = schema_entries()
    for f in fields(FinetuneParams):
        if f.name in ("rank", "bits"):
            continue
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        assert f.name in entries, f"FinetuneParams.{f.name} has no key in the config schema"
        assert default == entries[f.name]["default"], (f.name, default, entries[f.name]["default"])


def test_every_finetune_key_of_the_schema_reaches_the_params_or_the_rule():
    import yaml
    from maple.train.params import SCHEMA_FILE

    keys = set(yaml.safe_load(SCHEMA_FILE.read_text())["properties"]["finetune"]["properties"])
    params = {f.name for f in fields(FinetuneParams)}
    assert keys - params - set(RULE_KEYS) == {"ranks"}  # bits: the grid, and a field


def test_the_cli_and_the_rule_give_a_finetune_the_same_params():
    """A config that sets only the grid: the rule's params (schema defaults through the study) equal the CLI's
    (schema defaults through argparse), micro-batch and attempt included."""
    config = small_config()
    config["finetune"] = {"ranks": [4], "bits": [16]}
    config["models"]["tiny"] = {"build": "tiny_llama"}
    study = checked_study(config)[1]
    ft = study.finetune_params
    for attempt in (1, 2):
        by_rule = FinetuneParams(
            rank=4,
            bits=16,
            **{
                **rule_params(ft, study.models["tiny"], study.seed),
                "micro_batch_size": micro_batch_for_attempt(
                    ft["effective_batch_size"], ft["micro_batch_size"], attempt
                ),
            },
        )
        args = finetune_script.cli_parser().parse_args(
            ["--base", "b", "--train", "t", "--out", "o", "--rank", "4", "--bits", "16", "--attempt", str(attempt)]
        )
        assert asdict(finetune_script.params_from_args(args)) == asdict(by_rule)
    assert by_rule.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]


def test_cli_options_override_the_defaults():
    args = finetune_script.cli_parser().parse_args(
        ["--base", "b", "--train", "t", "--out", "o", "--rank", "8", "--target-modules", "q_proj", "v_proj"]
        + ["--learning-rate", "0.001", "--no-completion-only-loss", "--batching", "packed"]
    )
    params = finetune_script.params_from_args(args)
    assert (params.rank, params.bits, params.target_modules) == (8, 16, ["q_proj", "v_proj"])
    assert (params.learning_rate, params.completion_only_loss, params.batching) == (0.001, False, "packed")
