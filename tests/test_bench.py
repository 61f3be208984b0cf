"""The benchmarks in bench/ run and write their figures as JSON (bench/results.py): each benchmark in its smoke mode
on a tiny model, the two side by side; the JSON's keys and types are checked, not its timings."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from conftest import REPO
from tiny_models import CORPUS, build_tiny_llama

BENCH = REPO / "bench"


def bench_results():
    spec = importlib.util.spec_from_file_location("bench_results", BENCH / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def is_spread(value, n: int | None = None) -> bool:
    return (
        isinstance(value, dict)
        and all(isinstance(value[k], float) for k in ("median", "min", "max"))
        and value["min"] <= value["median"] <= value["max"]
        and isinstance(value["n"], int)
        and len(value["values"]) == value["n"]
        and (n is None or value["n"] == n)
    )


def check_header(report: dict, benchmark: str) -> None:
    assert report["benchmark"] == benchmark
    assert isinstance(report["schema"], int)
    assert isinstance(report["created"], str) and isinstance(report["command"], list)
    assert report["settings"]["smoke"] is True
    machine = report["machine"]
    assert isinstance(machine["cpu_count"], int) and isinstance(machine["torch_threads"], int)
    assert machine["device"] == "cpu" and isinstance(machine["device_name"], str)
    assert isinstance(report["versions"]["torch"], str) and isinstance(report["versions"]["transformers"], str)
    assert set(report["git"]) == {"commit", "dirty"}
    assert report["git"]["commit"] is None or len(report["git"]["commit"]) == 40


# --- the shared statistics ------------------------------------------------------------------------------------------


def test_spread_and_paired_ratio():
    results = bench_results()
    assert results.spread([3.0, None, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3, "values": [3, 1, 2]}
    assert results.spread([None]) is None
    # Per-repeat ratios pair each repeat of A with the same repeat of B: a machine that slows both arms of repeat 2
    # leaves the ratio alone, while the ratio of medians would move.
    ratio = results.paired_ratio([10.0, 5.0, 12.0], [5.0, 2.5, 6.0])
    assert ratio["median"] == ratio["min"] == ratio["max"] == 2.0
    assert ratio["ratio_of_medians"] == pytest.approx(10.0 / 5.0)
    assert results.paired_ratio([1.0, None], [2.0, 0.0]) == {**results.spread([0.5]), "ratio_of_medians": 0.5}
    assert results.fmt(results.spread([1.0, 2.0, 4.0]), "{:.1f}") == "2.0 (1.0-4.0)"


def test_results_file_is_written_atomically(tmp_path):
    results = bench_results()
    path = tmp_path / "sub" / "r.json"
    results.write(path, {**results.header("t", {"smoke": True}), "x": {1: 2.0}})
    report = json.loads(path.read_text())
    assert report["x"] == {"1": 2.0} and report["benchmark"] == "t"
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_compare_pairs_the_medians_of_two_results_files():
    results = bench_results()
    old = {"arms": {"a": {"figures": {"t": results.spread([1.0, 2.0, 3.0]), "m": None}, "runs": [{"t": 1.0}]}}}
    new = {"arms": {"a": {"figures": {"t": results.spread([4.0]), "m": results.spread([1.0])}}}}
    assert results.compare(old, new) == [("arms.a.figures.t", 2.0, 4.0)]


# --- the benchmarks in smoke mode -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Both benchmarks in smoke mode, at the same time: {name: (process, stdout, report)}."""
    tmp = tmp_path_factory.mktemp("bench")
    model = build_tiny_llama(tmp / "model")
    train = tmp / "train.jsonl"
    with open(train, "w", encoding="utf-8") as f:
        for i, text in enumerate(CORPUS * 3):
            record = {"id": f"t-{i}", "instruction": text, "input": "", "output": text[::-1], "lang": "xx"}
            f.write(json.dumps({**record, "source": "test"}, ensure_ascii=False) + "\n")
    commands = {
        "finetune_throughput": [
            *("--smoke", "--base", model, "--train", str(train), "--json", str(tmp / "finetune.json")),
        ],
        "eval_overhead": ["--smoke", "--json", str(tmp / "eval.json")],
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(BENCH / f"{name}.py"), *args],
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, args in commands.items()
    }
    out = {}
    for name, proc in procs.items():
        stdout, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{name} failed:\n{stdout[-5000:]}"
        json_path = tmp / ("finetune.json" if name == "finetune_throughput" else "eval.json")
        out[name] = (stdout, json.loads(json_path.read_text()))
    return out


@pytest.mark.slow
def test_finetune_throughput_smoke_json(smoke_runs):
    stdout, report = smoke_runs["finetune_throughput"]
    check_header(report, "finetune_throughput")
    settings = report["settings"]
    assert settings["repeats"] == 1 and settings["max_steps"] == 2 and settings["threads"] == 1
    assert set(report["arms"]) == {"maple", "trainer_defaults"}
    for arm in report["arms"].values():
        assert len(arm["runs"]) == 1 and arm["runs"][0]["steps"] == 2
        figures = arm["figures"]
        for key in ("real_tokens_per_second", "real_tokens_per_cpu_second", "useful_token_fraction", "loop_seconds"):
            assert is_spread(figures[key], n=1), key
        assert figures["mfu"] is None  # CPU: no MFU
    ratio = report["ratios"]["maple/trainer_defaults"]
    for key in ("real_tokens_per_second", "real_tokens_per_cpu_second", "useful_token_fraction", "peak_memory_bytes"):
        assert is_spread(ratio[key], n=1) and isinstance(ratio[key]["ratio_of_medians"], float), key
    # The ratio printed is the one in the file, with its spread.
    tps = ratio["real_tokens_per_second"]
    assert f"real tokens per second x{tps['median']:.2f} ({tps['min']:.2f}-{tps['max']:.2f})" in stdout


@pytest.mark.slow
def test_eval_overhead_smoke_json(smoke_runs):
    stdout, report = smoke_runs["eval_overhead"]
    check_header(report, "eval_overhead")
    measured = report["measured"]
    assert is_spread(measured["startup_s"], n=1)
    assert "16" in measured["demo"]["load_s"]
    assert all(is_spread(s, n=1) for s in measured["demo"]["load_s"].values())
    assert set(measured["demo"]["example_s"]) == {"multiple_choice", "generate"}
    assert all(is_spread(s, n=1) for s in measured["demo"]["example_s"].values())
    assert measured["big"] is None
    for name in ("demo", "paper"):
        projection = report["projections"][name]
        assert [r["design"] for r in projection["rows"]] == ["per score", "per task", "per variant"]
        assert all(isinstance(r["load_share"], float) for r in projection["rows"])
        assert set(projection["shares"]) == {"per score", "per task", "per variant"}
        assert all(is_spread(s["load_share"]) and is_spread(s["overhead_share"]) for s in projection["shares"].values())
    assert f"startup {measured['startup_s']['median']:.2f}" in stdout
