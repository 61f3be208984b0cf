"""Malformed configs are rejected before any job starts: a non-zero exit, one line naming the key and what was
expected, and nothing under the results directory created or changed.

Each case is a real run (`snakemake --cores 1`, not a dry run) in a workdir whose results directory already holds
files, so that a config wrongly accepted would start jobs (logs/, benchmarks/, new or removed results) and fail the
case rather than pass it silently.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_snakemake, small_config


def _set(path: str, value):
    """A mutation setting config[a][b]... = value (path 'a.b.c'; list indices as ints)."""

    def mutate(config):
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = config
        for key in parents:
            node = node[key]
        node[last] = value
        return config

    return mutate


def _delete(path: str):
    def mutate(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        del node[last]
        return config

    return mutate


def _add_model(alias: str, spec: dict):
    def mutate(config):
        config["models"][alias] = spec
        return config

    return mutate


def _add_dataset(name: str, spec: dict):
    def mutate(config):
        config["datasets"][name] = spec
        return config

    return mutate


# Bad GGUF sources (models.<alias>.gguf): tests/data/gguf holds a text file named .gguf and a GGUF header whose
# general.architecture is one transformers does not know; both by absolute path (the slow table runs elsewhere).
GGUF_DATA = REPO / "tests" / "data" / "gguf"


def _unknown_lm_eval_task(config):
    config["languages"]["en"]["codes"] = {"xcopa": "en"}
    config["evaluation"]["tasks"]["xcopa"] = {
        "source": "lm_eval",
        "lm_eval_task": "no_such_task_{code}",
        "languages": ["en"],
    }
    return config


def _duplicate_model_alias(config):
    """Raw YAML: the model alias `tiny` twice (yaml.safe_load would keep the second silently)."""
    text = yaml.safe_dump(config, sort_keys=False)
    return text.replace("models:\n  tiny:\n", "models:\n  tiny:\n    hub_id: org/other-model\n  tiny:\n", 1)


def _yaml_syntax_error(config):
    return yaml.safe_dump(config, sort_keys=False).replace("finetune:\n", "finetune: [\n", 1)


# id -> (mutation of the small config, or a function returning raw YAML text; the substrings one line of the
# message must hold: the key path first, then what was expected / what was given)
CASES = {
    "unknown_top_level_key": (_set("colour", "blue"), ["(top level)", "unknown key 'colour'", "expected one of"]),
    "unknown_finetune_key": (_set("finetune.learning_rte", 0.1), ["finetune", "unknown key 'learning_rte'"]),
    "rank_zero": (_set("finetune.ranks", [0]), ["finetune.ranks[0]", "expected a value >= 1", "got 0"]),
    "rank_negative": (_set("finetune.ranks", [4, -8]), ["finetune.ranks[1]", "expected a value >= 1", "got -8"]),
    "rank_not_integer": (_set("finetune.ranks", [4.5]), ["finetune.ranks[0]", "expected an integer", "4.5"]),
    "rank_string": (_set("finetune.ranks", ["8"]), ["finetune.ranks[0]", "expected an integer", "got a string"]),
    "bits_3": (_set("finetune.bits", [3, 16]), ["finetune.bits[0]", "expected one of [4, 8, 16]", "got 3"]),
    "empty_grid_ranks": (_set("finetune.ranks", []), ["finetune.ranks", "expected a list of at least 1 item"]),
    "empty_grid_models": (_set("models", {}), ["models", "expected at least 1 entry"]),
    "negative_learning_rate": (
        _set("finetune.learning_rate", -0.001),
        ["finetune.learning_rate", "expected a value > 0", "got -0.001"],
    ),
    "batch_not_a_multiple": (
        _set("finetune.micro_batch_size", 5),
        ["finetune.effective_batch_size", "expected a multiple of finetune.micro_batch_size (5)"],
    ),
    "max_steps_zero": (_set("finetune.max_steps", 0), ["finetune.max_steps", "expected -1 (run the epochs) or >= 1"]),
    "unknown_lm_eval_task": (
        _unknown_lm_eval_task,
        ["evaluation.tasks.xcopa.lm_eval_task", "'no_such_task_en'", "expected a task lm-eval knows"],
    ),
    "local_task_unknown_dataset": (
        _set("evaluation.tasks.demo_mc.dataset", "nope"),
        ["evaluation.tasks.demo_mc.dataset", "expected one of the datasets", "'nope'"],
    ),
    "task_kind_unknown": (
        _set("evaluation.tasks.demo_mc.kind", "cloze"),
        ["evaluation.tasks.demo_mc.kind", "expected one of ['multiple_choice', 'generate']"],
    ),
    "task_language_not_in_table": (
        _set("evaluation.tasks.demo_gen.languages", ["en", "fr"]),
        ["evaluation.tasks.demo_gen.languages", "'fr' is not in the languages table"],
    ),
    "data_language_not_in_table": (
        _set("datasets.demo.languages", ["en", "de", "sw", "fr"]),
        ["datasets.demo.languages", "'fr' is not in the languages table"],
    ),
    "language_code_malformed": (
        _set("languages.EN", {"script": "Latn", "resource": "high"}),
        ["languages", "'EN' is not an allowed name"],
    ),
    "duplicate_model_alias": (
        _duplicate_model_alias,
        ["models.tiny", "duplicate key 'tiny'", "expected each key once"],
    ),
    "alias_with_slash": (
        _add_model("meta-llama/Llama-2-7b-hf", {"hub_id": "meta-llama/Llama-2-7b-hf"}),
        ["models", "'meta-llama/Llama-2-7b-hf' is not an allowed name", "no '/'"],
    ),
    "model_two_sources": (
        _set("models.tiny.hub_id", "org/model"),
        ["models.tiny", "expected exactly one of hub_id, path, build", "got hub_id, build"],
    ),
    "missing_local_model_path": (
        _add_model("local", {"path": "no/such/model"}),
        ["models.local.path", "expected an existing local model directory", "no/such/model"],
    ),
    "gguf_missing_file": (
        _add_model("smol", {"gguf": "no/such/model.gguf"}),
        ["models.smol.gguf", "'no/such/model.gguf': no such file"],
    ),
    "gguf_missing_package": (
        _add_model("smol", {"gguf": "package:no_such_maple_package/model.gguf"}),
        ["models.smol.gguf", "no installed package 'no_such_maple_package'"],
    ),
    "gguf_not_a_gguf": (
        _add_model("smol", {"gguf": str(GGUF_DATA / "not_a_gguf.gguf")}),
        ["models.smol.gguf", "not_a_gguf.gguf", "is not a GGUF file", "magic bytes"],
    ),
    "gguf_unsupported_architecture": (
        _add_model("smol", {"gguf": str(GGUF_DATA / "unsupported_arch.gguf")}),
        ["models.smol.gguf", "unsupported_arch.gguf", "architecture 'nonesuch'", "transformers cannot convert"],
    ),
    "num_fewshot_wrong_type": (
        _set("evaluation.tasks.demo_mc.num_fewshot", "five"),
        ["evaluation.tasks.demo_mc.num_fewshot", "expected an integer", "'five'"],
    ),
    "trust_remote_code_wrong_type": (
        _set("models.tiny.trust_remote_code", "yes"),
        ["models.tiny.trust_remote_code", "expected true or false", "'yes'"],
    ),
    "backend_key_mistyped": (
        _add_dataset("gen", {"backend": "generate", "languages": ["en"], "teacher": "org/t", "max_new_tokns": 8}),
        ["datasets.gen", "unknown key 'max_new_tokns' for backend 'generate'", "did you mean 'max_new_tokens'?"],
    ),
    "template_backend_key_unknown": (
        _set("datasets.demo.teacher", "org/t"),
        ["datasets.demo", "unknown key 'teacher' for backend 'template'", "expected one of"],
    ),
    "model_key_mistyped": (
        _set("models.tiny.prompt_fromat", "plain"),
        ["models.tiny", "unknown key 'prompt_fromat'", "did you mean 'prompt_format'?"],
    ),
    "seed_wrong_type": (_set("seed", "abc"), ["seed", "expected an integer", "'abc'"]),
    "data_seed_negative": (_set("datasets.demo.seed", -1), ["datasets.demo.seed", "expected a value >= 0"]),
    "missing_required_section": (_delete("evaluation"), ["(top level)", "missing required key 'evaluation'"]),
    "batch_size_word": (
        _set("evaluation.batch_size", "large"),
        ["evaluation.batch_size", "expected an integer >= 1, 'auto' or 'auto:N'", "'large'"],
    ),
    "allow_missing_wrong_type": (_set("allow_missing", "maybe"), ["allow_missing", "expected true or false"]),
    # Snakemake reads a --configfile before the workflow does; its own message names no line (docs/reruns-and-faults.md,
    # "Bad configs"). The workflow's checker names it: test_yaml_syntax_error_named_by_the_checker.
    "yaml_syntax_error": (_yaml_syntax_error, ["Config file is not valid JSON or YAML"]),
}


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 and mtime of every file under root."""
    state = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[str(path.relative_to(root))] = f"{digest}:{path.stat().st_mtime_ns}"
    return state


@pytest.fixture
def workdir(tmp_path_factory):
    """A workdir of the case's own whose results directory already holds outputs (stand-ins, with no Snakemake
    metadata), so that a case wrongly accepted cannot change what the next case sees."""
    root = tmp_path_factory.mktemp("bad-config")
    for rel, text in {
        "results/data/demo/train.jsonl": '{"id": 1}\n',
        "results/tables/scores.csv": "model\n",
        "results/adapters/tiny/demo/r4-q4/adapter_config.json": "{}",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


# An error line is one readable line: at most this many characters beside the paths it names, which are as long as
# the checkout's and the temp directory's locations and so are not counted.
MAX_LINE = 400


def line_length(line: str, *paths: Path) -> int:
    for path in sorted({str(p) for p in (*paths, REPO)}, key=len, reverse=True):
        line = line.replace(path, "<path>")
    return len(line)


def write_case(directory: Path, mutate) -> Path:
    made = mutate(small_config())
    path = directory / "config.yaml"
    path.write_text(made if isinstance(made, str) else yaml.safe_dump(made, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_is_rejected_before_any_job(case, workdir, tmp_path):
    mutate, expected = CASES[case]
    config = write_case(tmp_path, mutate)
    before = snapshot(workdir / "results")

    result = run_snakemake(workdir, "--cores", "1", "--resources", "gpu=1", config=config, check=False, timeout=300)
    output = result.stdout + result.stderr

    assert result.returncode != 0, f"{case}: accepted\n{output[-3000:]}"
    # One line names the key and what was expected.
    lines = [line for line in output.splitlines() if expected[0] in line and all(e in line for e in expected[1:])]
    assert lines, f"{case}: no line with {expected}:\n{output[-3000:]}"
    assert line_length(lines[0], workdir, tmp_path) < MAX_LINE, lines[0]
    # Before any job: no DAG built, no job started (logs/, benchmarks/), results untouched.
    assert "Building DAG of jobs" not in output, f"{case}: the DAG was built:\n{output[-3000:]}"
    assert not (workdir / "logs").exists() and not (workdir / "benchmarks").exists()
    assert snapshot(workdir / "results") == before


# Cases Snakemake rejects before the workflow reads anything (so maple.config.validation never sees them).
SNAKEMAKE_ONLY = {"yaml_syntax_error"}


@pytest.mark.parametrize("case", sorted(set(CASES) - SNAKEMAKE_ONLY))
def test_bad_config_is_rejected_by_the_checks(case, tmp_path):
    """The fast tier's view of the table: the workflow's checks themselves (maple.config.validation.checked_study, as
    common.smk calls them) raise one line naming the key and what was expected."""
    from maple.config.validation import ConfigError, checked_study, load_yaml_strict

    mutate, expected = CASES[case]
    path = write_case(tmp_path, mutate)
    with pytest.raises(ConfigError) as error:
        checked_study(load_yaml_strict(path), config_files=[path], config_dir=str(tmp_path))
    lines = [line for line in str(error.value).splitlines() if all(e in line for e in expected)]
    assert lines, f"{case}: no line with {expected}:\n{error.value}"


@pytest.mark.parametrize("case", ["backend_key_mistyped", "model_key_mistyped", "gguf_not_a_gguf"])
def test_bad_keys_and_files_stop_the_dry_run(case, tmp_path):
    """`snakemake -n` itself stops on a mistyped backend key or model key, or a model file that is not GGUF, with one
    line naming the key (and the file), no DAG built."""
    mutate, expected = CASES[case]
    result = run_snakemake(tmp_path, "-n", config=write_case(tmp_path, mutate), check=False, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    lines = [line for line in output.splitlines() if all(e in line for e in expected)]
    assert len(lines) == 1 and line_length(lines[0], tmp_path) < MAX_LINE, output[-3000:]
    assert "Building DAG of jobs" not in output


def test_the_default_config_is_valid(tmp_path):
    """The baseline of the table: the unmutated small config passes the same checks (a dry run plans jobs)."""
    config = write_case(tmp_path, lambda c: c)
    result = run_snakemake(tmp_path, "-n", "--quiet", "rules", config=config)
    assert "finetune" in result.stdout + result.stderr


def test_yaml_syntax_error_named_by_the_checker(tmp_path):
    """`python workflow/scripts/check_config.py CONFIG` (documented for a --configfile that Snakemake itself cannot
    parse) names the file, the line and the column."""
    config = write_case(tmp_path, _yaml_syntax_error)
    bad_line = next(i for i, line in enumerate(config.read_text().splitlines(), 1) if line == "finetune: [")
    result = subprocess.run(
        [sys.executable, str(REPO / "workflow" / "scripts" / "check_config.py"), str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert f"{config}, line " in result.stderr and "not valid YAML" in result.stderr, result.stderr
    line = int(result.stderr.split(", line ")[1].split(",")[0])
    assert bad_line <= line <= bad_line + 3, (bad_line, result.stderr)


def test_checker_accepts_the_shipped_configs():
    for name in ("config.yaml", "maple.yaml", "smollm2.yaml"):
        result = subprocess.run(
            [sys.executable, str(REPO / "workflow" / "scripts" / "check_config.py"), str(REPO / "config" / name)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
        assert result.returncode == 0, result.stderr
        assert "valid" in result.stdout and "\nEstimate: " in result.stdout


def test_checker_counts_the_evaluation_jobs_as_planned(tmp_path):
    """The demo's 10 evaluation jobs (5 variants x 2 tasks); with demo_gen on engine vllm, one job per model and
    evaluation bit-width for it (2) instead of one per variant (5): 7."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    config["evaluation"]["tasks"]["demo_gen"]["engine"] = "vllm"
    path = tmp_path / "vllm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    counts = {}
    for name, config_path in (("demo", REPO / "config" / "config.yaml"), ("vllm", path)):
        result = subprocess.run(
            [sys.executable, str(REPO / "workflow" / "scripts" / "check_config.py"), str(config_path)],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert result.returncode == 0, result.stderr
        counts[name] = result.stdout.split(" evaluation jobs)")[0].rsplit(" ", 1)[-1]
    assert counts == {"demo": "10", "vllm": "7"}


def test_strict_loader_names_duplicate_keys(tmp_path):
    """The strict loader on its own: the key path and both lines."""
    from maple.config.validation import ConfigError, load_yaml_strict

    path = tmp_path / "c.yaml"
    path.write_text("models:\n  a: {build: tiny_llama}\n  b: {hub_id: x/y}\n  a: {hub_id: z/w}\n")
    with pytest.raises(ConfigError, match=r"line 4: models\.a: duplicate key 'a' \(first given on line 2\)"):
        load_yaml_strict(path)
    path.write_text("evaluation:\n  tasks:\n    t: {languages: [en, de], languages: [en]}\n")
    with pytest.raises(ConfigError, match=r"evaluation\.tasks\.t\.languages: duplicate key"):
        load_yaml_strict(path)
