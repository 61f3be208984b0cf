"""Evaluation that resumes inside a job (maple.evaluate.request_cache; docs/reruns-and-faults.md, "An evaluation
resumes"). Fast: the vLLM group job (lm-eval's vLLM model replaced at its import by tests/fake_vllm.py, everything
else real) stopped by an error after some of its requests and run again computes only the rest, with the files of an
uninterrupted run; a work directory left by another adapter is never read. Slow: the evaluate rule of the reduced demo
(tiny model, HFLM) killed with SIGKILL half-way through its requests and rerun, against an uninterrupted run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import fake_vllm
import pytest
import yaml
from conftest import REPO, SNAKEMAKE, copy_run, run_snakemake
from maple.evaluate.request_cache import CHUNK_VARIABLE, DELAY_VARIABLE, FINGERPRINT_FILE, work_dir_of
from test_vllm_groups import local_task, without_times

ANSWER = fake_vllm.FakeVLLM.generate_until
COUNTS = re.compile(r"\[maple\] (\S+) (\w+): (\d+) requests, (\d+) from the cache, (\d+) computed")


def counts(log: str) -> list[tuple[str, str, int, int, int]]:
    """(unit, request type, requests, from the cache, computed) of each request call a job's log reports."""
    return [(u, t, int(n), int(c), int(k)) for u, t, n, c, k in COUNTS.findall(log)]


class Stopped(Exception):
    pass


def member(tmp_path, out, variant, languages=("en", "de")):
    """A group member: its adapter (one per variant, shared by the runs), its score and samples files under out."""
    adapter = None
    if variant != "base":
        adapter = tmp_path / "adapters" / variant
        if not adapter.exists():
            adapter.mkdir(parents=True)
            (adapter / "adapter_config.json").write_text(json.dumps({"r": 4, "variant": variant}))
    files = {lang: str(tmp_path / out / variant / f"{lang}.json") for lang in languages}
    samples = {lang: str(tmp_path / out / variant / f"{lang}.samples.jsonl") for lang in languages}
    return {"variant": variant, "adapter_dir": adapter and str(adapter), "score_files": files, "samples_files": samples}


def group_run(tmp_path, out, monkeypatch, stop_after=None):
    """The group job over base and two adapters, two languages of three requests each; stop_after: raise (as a kill
    would end the job) when the engine is asked for that many more chunks."""
    from maple.evaluate.lora_group import evaluate_group

    engine = fake_vllm.install(monkeypatch)
    asked = []

    def generate_until(self, requests, disable_tqdm=False):
        if stop_after is not None and len(asked) == stop_after:
            raise Stopped()
        asked.append(len(requests))
        return ANSWER(self, requests, disable_tqdm)

    monkeypatch.setattr(engine, "generate_until", generate_until)
    base = tmp_path / "base"
    if not base.exists():
        base.mkdir()
        (base / "config.json").write_text("{}")
    task = local_task(tmp_path, ("en", "de"))
    members = [member(tmp_path, out, v) for v in ("base", "d-r4-q16", "d-r8-q16")]
    common = dict(model_alias="m", base_source=str(base), bits=16, task=task, batch_size=4, seed=7)
    try:
        evaluate_group(members=members, **common)
    except Stopped:
        pass
    return members, asked


def test_a_stopped_group_job_computes_only_the_requests_it_had_not_finished(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CHUNK_VARIABLE, "2")  # 3 requests per unit: chunks of 2 and 1
    members, asked = group_run(tmp_path, "resumed", monkeypatch, stop_after=7)
    assert sum(asked) == 11  # base en, de (2 + 1 each), d-r4 en, one chunk of de
    first = capsys.readouterr().out
    # the stopped run saved what it computed, beside the score files; no work directory of a unit not begun
    work = {v: work_dir_of(m["score_files"]["de"]) for v, m in ((m["variant"], m) for m in members)}
    assert work["d-r4-q16"].is_dir() and not work["d-r8-q16"].exists()
    assert counts(first)[-1] == ("en", "generate_until", 3, 0, 3)

    members, asked = group_run(tmp_path, "resumed", monkeypatch)
    log = capsys.readouterr().out
    reported = counts(log)
    assert [(u, n, c, k) for u, _, n, c, k in reported] == [
        ("en", 3, 3, 0),
        ("de", 3, 3, 0),
        ("en", 3, 3, 0),
        ("de", 3, 2, 1),
        ("en", 3, 0, 3),
        ("de", 3, 0, 3),
    ], log
    assert sum(asked) == sum(k for *_, k in reported) == 18 - 11  # the engine saw only the rest
    assert not list(tmp_path.glob("resumed/**/*.work")), "work directories are removed once the scores are in place"

    uninterrupted, asked = group_run(tmp_path, "uninterrupted", monkeypatch)
    assert sum(asked) == 18
    for resumed, alone in zip(members, uninterrupted):
        for lang in ("en", "de"):
            assert without_times(resumed["score_files"][lang]) == without_times(alone["score_files"][lang])
            resumed_samples = Path(resumed["samples_files"][lang]).read_bytes()
            assert resumed_samples == Path(alone["samples_files"][lang]).read_bytes()


def test_a_work_directory_left_by_another_adapter_is_removed_not_read(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CHUNK_VARIABLE, "2")
    members, _ = group_run(tmp_path, "run", monkeypatch, stop_after=5)
    capsys.readouterr()
    work = work_dir_of(members[1]["score_files"]["en"])
    saved = json.loads((work / FINGERPRINT_FILE).read_text())
    assert saved["unit"] == "en" and saved["adapter_sha256"]
    # the adapter is retrained (its config changes) before the rerun: its saved answers must not be used
    config = Path(members[1]["adapter_dir"]) / "adapter_config.json"
    config.write_text(json.dumps({"r": 8, "variant": "d-r4-q16"}))
    _, asked = group_run(tmp_path, "run", monkeypatch)
    log = capsys.readouterr().out
    assert f"{work} was left by another model, adapter or setting: removed" in log
    reported = counts(log)
    assert reported[2] == ("en", "generate_until", 3, 0, 3), log  # d-r4-q16's en: all computed again
    assert reported[0][3] == 3  # base's en, same base: from the cache
    assert sum(asked) == 18 - 6


def test_the_test_knobs_are_checked(monkeypatch):
    from maple.evaluate.request_cache import chunk_requests

    monkeypatch.setenv(CHUNK_VARIABLE, "0")
    with pytest.raises(ValueError, match=CHUNK_VARIABLE):
        chunk_requests()


# --- the evaluate rule killed half-way and rerun -------------------------------------------------------------------

JOB_FILES = [
    f"results/{kind}/tiny/base/demo_mc/{lang}.{ext}"
    for lang in ("en", "de", "sw")
    for kind, ext in (("scores", "json"), ("samples", "jsonl"))
]
JOB_LOG = "logs/evaluate/tiny/base/demo_mc.log"
RUN_ARGS = ("--cores", "2", *JOB_FILES, "--resources", "gpu=1")  # --resources and --configfile take lists


def resume_run(small_run, dest: Path) -> tuple[Path, Path]:
    """A copy of the small run with log_samples on, so that the base model's demo_mc job is to run again (its samples
    files are new outputs) and its samples can be compared byte for byte."""
    src, config_path = small_run
    work = copy_run(src, dest)
    config = yaml.safe_load(Path(config_path).read_text())
    config["evaluation"]["log_samples"] = True
    path = work / "config-samples.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return work, path


def job_env(**variables) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (CHUNK_VARIABLE, DELAY_VARIABLE)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return {**env, CHUNK_VARIABLE: "8", **variables}  # chunks of 8 requests: 8 per language of 16 examples


def saved_chunks(work: Path) -> list[Path]:
    return [p for p in work.glob("results/scores/tiny/base/demo_mc/*.work/*.json") if p.name != FINGERPRINT_FILE]


def last_attempt(log: str) -> str:
    """The log of the job's last run (the log file is appended to by each)."""
    return log[log.rindex("[maple] host=") :]


@pytest.mark.slow
def test_an_evaluation_killed_half_way_computes_only_the_rest_and_scores_as_an_uninterrupted_run(small_run, tmp_path):
    whole, whole_config = resume_run(small_run, tmp_path / "uninterrupted")
    subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(whole), "--configfile", str(whole_config), *RUN_ARGS],
        env=job_env(),
        check=True,
        capture_output=True,
        timeout=900,
    )
    uninterrupted = counts(last_attempt((whole / JOB_LOG).read_text()))
    total = sum(n for *_, n, _, _ in uninterrupted)
    assert total >= 48 and all(cached == 0 for *_, cached, _ in uninterrupted), uninterrupted

    work, config = resume_run(small_run, tmp_path / "killed")
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(work), "--configfile", str(config), *RUN_ARGS]
    # each computed request a tenth of a second slower, so that the kill lands half-way through the job's requests
    with open(tmp_path / "killed.out", "w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=job_env(**{DELAY_VARIABLE: "0.1"}), start_new_session=True
        )
    deadline = time.time() + 600
    while sum(len(json.loads(p.read_text())["responses"]) for p in saved_chunks(work)) < total // 2:
        assert proc.poll() is None, (tmp_path / "killed.out").read_text()[-3000:]
        assert time.time() < deadline, "the job saved no half of its requests within 600 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its job, as a crash or the OOM killer would
    proc.wait()
    time.sleep(1)
    saved = sum(len(json.loads(p.read_text())["responses"]) for p in saved_chunks(work))
    assert total // 2 <= saved < total
    assert not any((work / f).exists() for f in JOB_FILES if f.endswith(".jsonl")), "the job ended before the kill"

    run_snakemake(work, "--unlock", "--cores", "1", config=config)
    rerun = subprocess.run(cmd + ["--rerun-incomplete"], env=job_env(), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    resumed = counts(last_attempt((work / JOB_LOG).read_text()))
    # the log says, per language, how many requests came from the cache and how many were computed: only the rest
    assert [(u, t, n) for u, t, n, _, _ in resumed] == [(u, t, n) for u, t, n, _, _ in uninterrupted]
    assert sum(cached for *_, cached, _ in resumed) == saved
    assert sum(computed for *_, computed in resumed) == total - saved
    assert not list(work.glob("results/scores/**/*.work")), "work directories are removed once the scores are in place"

    for name in JOB_FILES:
        if name.endswith(".jsonl"):
            assert (work / name).read_bytes() == (whole / name).read_bytes(), name
        else:  # the same file but for the job's own times and date
            assert without_times(str(work / name)) == without_times(str(whole / name)), name
