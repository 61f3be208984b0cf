"""The benchmarks in bench/ run and write their figures as JSON (bench/bench_report.py): each benchmark in its smoke mode
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


def bench_report():
    spec = importlib.util.spec_from_file_location("bench_report", BENCH / "bench_report.py")
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
    bench = bench_report()
    assert bench.spread([3.0, None, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3, "values": [3, 1, 2]}
    assert bench.spread([None]) is None
    # Per-repeat ratios pair each repeat of A with the same repeat of B: a machine that slows both arms of repeat 2
    # leaves the ratio alone, while the ratio of medians would move.
    ratio = bench.paired_ratio([10.0, 5.0, 12.0], [5.0, 2.5, 6.0])
    assert ratio["median"] == ratio["min"] == ratio["max"] == 2.0
    assert ratio["ratio_of_medians"] == pytest.approx(10.0 / 5.0)
    assert bench.paired_ratio([1.0, None], [2.0, 0.0]) == {**bench.spread([0.5]), "ratio_of_medians": 0.5}
    assert bench.fmt(bench.spread([1.0, 2.0, 4.0]), "{:.1f}") == "2.0 (1.0-4.0)"


def test_results_file_is_written_atomically(tmp_path):
    bench = bench_report()
    path = tmp_path / "sub" / "r.json"
    bench.write(path, {**bench.header("t", {"smoke": True}), "x": {1: 2.0}})
    report = json.loads(path.read_text())
    assert report["x"] == {"1": 2.0} and report["benchmark"] == "t"
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_compare_pairs_the_medians_of_two_results_files():
    bench = bench_report()
    old = {"arms": {"a": {"figures": {"t": bench.spread([1.0, 2.0, 3.0]), "m": None}, "runs": [{"t": 1.0}]}}}
    new = {"arms": {"a": {"figures": {"t": bench.spread([4.0]), "m": bench.spread([1.0])}}}}
    assert bench.compare(old, new) == [("arms.a.figures.t", 2.0, 4.0)]


# --- the benchmarks in smoke mode -------------------------------------------------------------------------------------


def merge_eval_inputs(model: str, tmp) -> tuple[str, str]:
    """A 16-bit LoRA adapter of the tiny model whose B is not zero (so that merging changes the weights) and
    held-out sets of both local task kinds in two languages."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapter = tmp / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(model), lora).save_pretrained(adapter)
    eval_dir = tmp / "eval"
    for sub in ("eval_mc", "eval_gen"):
        (eval_dir / sub).mkdir(parents=True)
        for lang in ("xx", "yy"):
            with open(eval_dir / sub / f"{lang}.jsonl", "w", encoding="utf-8") as f:
                for i, text in enumerate(CORPUS[:4]):
                    words = text.split()
                    record = {"id": f"{lang}-{i}", "instruction": text, "input": "", "output": words[0]}
                    record.update(lang=lang, source="test", choices=[words[0], words[-1]], label=0)
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return str(adapter), str(eval_dir)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """The benchmarks in smoke mode, at the same time: {name: (stdout, report)}."""
    tmp = tmp_path_factory.mktemp("bench")
    model = build_tiny_llama(tmp / "model")
    train = tmp / "train.jsonl"
    with open(train, "w", encoding="utf-8") as f:
        for i, text in enumerate(CORPUS * 3):
            record = {"id": f"t-{i}", "instruction": text, "input": "", "output": text[::-1], "lang": "xx"}
            f.write(json.dumps({**record, "source": "test"}, ensure_ascii=False) + "\n")
    adapter, eval_dir = merge_eval_inputs(model, tmp)
    commands = {
        "finetune_throughput": [
            *("--smoke", "--base", model, "--train", str(train), "--json", str(tmp / "finetune.json")),
        ],
        "eval_overhead": ["--smoke", "--json", str(tmp / "eval.json")],
        "merge_eval": [
            *("--smoke", "--base", model, "--adapter", adapter, "--eval-dir", eval_dir, "--prompt-format", "plain"),
            *("--languages", "xx,yy", "--limit", "4", "--json", str(tmp / "merge_eval.json")),
        ],
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
        json_path = tmp / {"finetune_throughput": "finetune.json", "eval_overhead": "eval.json"}.get(
            name, f"{name}.json"
        )
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


@pytest.mark.slow
def test_merge_eval_smoke_json(smoke_runs):
    stdout, report = smoke_runs["merge_eval"]
    check_header(report, "merge_eval")
    assert set(report["arms"]) == {"merged", "unmerged"}
    for arm in report["arms"].values():
        assert is_spread(arm["figures"]["eval_seconds"], n=1) and is_spread(arm["figures"]["load_seconds"], n=1)
    ratio = report["ratios"]["unmerged/merged"]["eval_seconds"]
    assert is_spread(ratio, n=1)
    assert (
        f"unmerged / merged evaluation seconds: x{ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f})"
        in stdout
    )
    # Merged and unmerged give the same scores within the tolerance (fp32 on a CPU) on an adapter that does change
    # the model: every example agrees and every choice's log-likelihood is within the tolerance.
    (agreement,) = report["agreement"]
    assert agreement["examples"] == 2 * 2 * 4 and agreement["same_example_values"] == agreement["examples"]
    assert agreement["max_loglik_difference"] <= report["tolerance"]["loglik_nats"]
    assert agreement["within_tolerance"] is True and "equal within the tolerance" in stdout
    assert set(report["scores"]["merged"]) == {"demo_mc", "demo_gen"}
    assert report["scores"]["merged"] == report["scores"]["unmerged"]


def test_estimate_vs_measured_joins_each_job_with_its_benchmark_and_gives_ratios_per_class(tmp_path):
    """bench/estimate_vs_measured.py's joining and ratios on a small estimate: every row finds the benchmark file its
    rule writes (finetune, evaluation shard, data job, data part), a job that did not run is left out, and each
    class's median and spread are measured / estimated on the chosen clock."""
    sys.path.insert(0, str(BENCH))
    import estimate_vs_measured as evm

    def row(stage, model, variant, task, job, seconds):
        return {"stage": stage, "model": model, "variant": variant, "task": task, "job": job, "gpu_seconds": seconds}

    rows = [
        row("finetune", "tiny", "demo-r4-q16", "", "", 10.0),
        row("finetune", "tiny", "my-data-r16-q4", "", "", 20.0),
        row("evaluate", "tiny", "base", "demo_mc", "demo_mc", 8.0),
        row("evaluate", "tiny", "demo-r4-q16", "demo_gen", "demo_gen.s2", 4.0),
        row("synth_data", "smollm2", "gen", "", "gen", 50.0),
        row("synth_data", "smollm2", "big", "", "big_p2", 30.0),
        row("evaluate", "tiny", "demo-r4-q4", "demo_mc", "demo_mc", 8.0),  # did not run
    ]
    paths = [evm.benchmark_path(r) for r in rows]
    assert paths[:6] == [
        "benchmarks/finetune/tiny/demo/r4-q16.tsv",
        "benchmarks/finetune/tiny/my-data/r16-q4.tsv",
        "benchmarks/evaluate/tiny/base/demo_mc.tsv",
        "benchmarks/evaluate/tiny/demo-r4-q16/demo_gen.s2.tsv",
        "benchmarks/synth_data/gen.tsv",
        "benchmarks/synth_part/big/p2.tsv",
    ]
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for path, (wall, cpu) in zip(paths, [(30, 12), (30, 16), (20, 8), (9, 6), (80, 45), (30, 33)]):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(header + f"{wall}\t0:00:{wall}\t1\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    measured = {p: evm.read_benchmark(tmp_path / p) for p in paths}
    assert measured[paths[6]] is None and measured[paths[0]] == {"wall": 30.0, "cpu": 12.0, "cpu_sampled": 12.0}
    assert evm.last_sample(80.0) == 60.0 and measured[paths[4]]["cpu"] == pytest.approx(45 * 80 / 60)
    joined = evm.join(rows, measured)
    assert len(joined) == 6
    classes = {c["class"]: c for c in evm.by_class(joined, "cpu")}
    assert set(classes) == {"finetune", "evaluate demo_mc", "evaluate demo_gen", "data"}
    finetune = classes["finetune"]  # cpu / estimated: 1.2 and 0.8
    assert finetune["jobs"] == 2 and finetune["ratio_median"] == pytest.approx(1.0)
    assert (finetune["ratio_min"], finetune["ratio_max"]) == pytest.approx((0.8, 1.2))
    assert finetune["wall_ratio_median"] == pytest.approx((3.0 + 1.5) / 2) and finetune["within_target"]
    assert (
        classes["evaluate demo_gen"]["ratio_median"] == pytest.approx(1.5)
        and classes["evaluate demo_gen"]["within_target"]
    )
    assert classes["data"]["ratio_median"] == pytest.approx((1.2 + 1.1) / 2)  # 45 s sampled at 60 of 80 s: 60
    assert evm.by_class(joined, "wall")[0]["ratio_median"] == pytest.approx(2.25)  # the wall clock on its own
    walls = {c["class"]: c for c in evm.by_class(joined, "wall")}
    assert not walls["evaluate demo_mc"]["within_target"]  # 20 / 8 = 2.5: outside 0.67-1.5
