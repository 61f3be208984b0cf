"""The figures and summary tables: unit tests on a small constructed table (axes, series, colours; not pixels), and
the figures of a real (small) run checked against the run's own tables and benchmark files."""

from __future__ import annotations

import json
import math

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import copy_run, planned_jobs, run_snakemake
from maple.report import run_plots, score_plots, style
from maple.report.figures import FIGURES, figures_for_study
from maple.report.summary import (
    best_variants,
    cost_table,
    load_reference,
    pareto_front,
    reference_comparison,
    summary_markdown,
)

LANGS = {"en": "high", "de": "high", "sw": "low", "hi": "low"}
BASE = {"en": 0.60, "de": 0.50, "sw": 0.30, "hi": 0.25}
SE = 0.02


def gain(lang: str, data: str, rank: int, bits: int, task: str) -> float:
    """Low-resource languages gain with rank, high-resource ones a little; 4-bit costs 0.01; `tra` adds 0.02."""
    per_rank = 0.01 if LANGS[lang] == "high" else 0.03
    return (
        per_rank * math.log2(rank)
        - (0.01 if bits == 4 else 0.0)
        + (0.02 if data == "tra" else 0.0)
        + (0.05 if task == "gen" else 0.0)
    )


def make_table(datasets=("gen_data", "tra"), ranks=(4, 16), bits=(4, 16), tasks=("gen", "mc")) -> pd.DataFrame:
    rows = []
    for task in tasks:
        for lang, resource in LANGS.items():
            rows.append(
                dict(
                    model="m",
                    variant="base",
                    data=None,
                    rank=None,
                    bits=None,
                    task=task,
                    lang=lang,
                    script="Latn",
                    resource=resource,
                    metric="acc",
                    value=BASE[lang],
                    stderr=SE,
                    n=100,
                    delta_vs_base=None,
                    delta_ci_low=None,
                    delta_ci_high=None,
                )
            )
            for d in datasets:
                for r in ranks:
                    for b in bits:
                        g = gain(lang, "tra" if d == "tra" else "gen", r, b, task)
                        rows.append(
                            dict(
                                model="m",
                                variant=f"{d}-r{r}-q{b}",
                                data=d,
                                rank=r,
                                bits=b,
                                task=task,
                                lang=lang,
                                script="Latn",
                                resource=resource,
                                metric="acc",
                                value=BASE[lang] + g,
                                stderr=SE,
                                n=100,
                                delta_vs_base=g,
                                delta_ci_low=g - 0.05,
                                delta_ci_high=g + 0.05,
                            )
                        )
    table = pd.DataFrame(rows)
    for col in ("rank", "bits"):
        table[col] = table[col].astype("Int64")
    return table


@pytest.fixture(scope="module")
def table():
    return make_table()


def labelled_lines(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def assert_colour_blind_safe(colours) -> None:
    allowed = {mcolors.to_hex(c) for c in style.OKABE_ITO} | {mcolors.to_hex("grey"), mcolors.to_hex("black")}
    used = {mcolors.to_hex(c) for c in colours}
    assert used <= allowed, f"colours outside the Okabe-Ito palette: {used - allowed}"


def test_figures_for_study_picks_what_the_grid_supports():
    langs = {"mc": ["en", "de"], "gen": ["de"]}
    assert figures_for_study(["demo"], langs, False) == [
        "score_vs_rank",
        "score_vs_bits",
        "delta_heatmap",
        "english_retention",
        "loss_curves",
        "cost_vs_gain",
    ]
    both = figures_for_study(["gen", "tra"], langs, True)
    assert both == FIGURES
    assert "english_retention" not in figures_for_study(["demo"], {"mc": ["en"], "gen": ["de", "sw"]}, False)
    for name in FIGURES:
        assert callable(getattr(score_plots, name, None) or getattr(run_plots, name))


def test_score_vs_rank_has_one_line_per_resource_class_with_cis(table):
    fig = score_plots.score_vs_rank(table, "m")
    axes = fig.axes
    assert len(axes) == 2 * 2  # tasks x bits
    assert [ax.get_title() for ax in axes] == [
        f"{t}, {b}\n2 high, 2 low languages" for t in ("gen", "mc") for b in ("4-bit NF4 QLoRA", "16-bit LoRA")
    ]
    ax = axes[3]  # mc, 16-bit
    assert ax.get_xlabel() == "LoRA rank" and ax.get_xscale() == "log"
    assert ax.get_ylabel().startswith("acc")
    lines = labelled_lines(ax)
    assert set(lines) == {
        "high-resource, gen_data",
        "high-resource, tra",
        "low-resource, gen_data",
        "low-resource, tra",
        "high-resource, base model",
        "low-resource, base model",
    }
    low = lines["low-resource, gen_data"]
    assert list(low.get_xdata()) == [4, 16]
    expected = [np.mean([BASE[lang] + gain(lang, "gen", r, 16, "mc") for lang in ("sw", "hi")]) for r in (4, 16)]
    np.testing.assert_allclose(low.get_ydata(), expected)
    # The headline: the low-resource class gains more from rank 4 to 16 than the high-resource one.
    high = lines["high-resource, gen_data"]
    assert np.diff(low.get_ydata())[0] > np.diff(high.get_ydata())[0] > 0
    np.testing.assert_allclose(lines["low-resource, base model"].get_ydata(), [np.mean([0.30, 0.25])] * 2)
    # 95 % CI error bars: 1.96 * sqrt(2 se^2) / 2 around each point.
    bars = [c for c in ax.containers if c.has_yerr]
    assert len(bars) == 4
    segments = bars[0].lines[2][0].get_segments()
    half_widths = [(seg[1][1] - seg[0][1]) / 2 for seg in segments]
    np.testing.assert_allclose(half_widths, style.Z95 * math.sqrt(2 * SE**2) / 2)
    assert_colour_blind_safe(line.get_color() for line in ax.get_lines())


def test_score_vs_bits_averages_over_ranks(table):
    fig = score_plots.score_vs_bits(table, "m")
    assert [ax.get_title() for ax in fig.axes] == ["gen\n2 high, 2 low languages", "mc\n2 high, 2 low languages"]
    ax = fig.axes[1]
    assert "bits" in ax.get_xlabel()
    line = labelled_lines(ax)["high-resource, tra"]
    assert list(line.get_xdata()) == [4, 16]
    expected = [
        np.mean([BASE[lang] + gain(lang, "tra", r, b, "mc") for lang in ("en", "de") for r in (4, 16)]) for b in (4, 16)
    ]
    np.testing.assert_allclose(line.get_ydata(), expected)
    assert line.get_ydata()[1] - line.get_ydata()[0] == pytest.approx(0.01)  # 4-bit costs 0.01 here


def test_delta_heatmap_is_centred_on_zero(table):
    fig = score_plots.delta_heatmap(table, "m")
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["gen (acc)", "mc (acc)"]
    ax = panels[1]
    image = ax.images[0]
    vmin, vmax = image.get_clim()
    assert vmin == -vmax and vmax > 0
    assert image.get_cmap().name == style.DIVERGING_CMAP
    assert [t.get_text() for t in ax.get_yticklabels()] == ["de (high)", "en (high)", "hi (low)", "sw (low)"]
    columns = [t.get_text() for t in ax.get_xticklabels()]
    assert columns == [
        "gen_data-r4-q4",
        "gen_data-r4-q16",
        "gen_data-r16-q4",
        "gen_data-r16-q16",
        "tra-r4-q4",
        "tra-r4-q16",
        "tra-r16-q4",
        "tra-r16-q16",
    ]
    data = image.get_array()
    assert data.shape == (4, 8)
    assert data[3, 3] == pytest.approx(gain("sw", "gen", 16, 16, "mc"))
    assert len(fig.axes) == 3  # two panels, one shared colour bar
    assert "delta vs base" in fig.axes[2].get_ylabel()
    assert len(ax.texts) == 4 * 8  # small panels: every cell carries its value


def test_english_retention_points(table):
    # English loses with the 4-bit variants of `tra`, to tell the points apart from the others.
    t = table.copy()
    hit = (t["lang"] == "en") & (t["bits"] == 4) & (t["data"] == "tra")
    t.loc[hit, "delta_vs_base"] = -0.1
    fig = score_plots.english_retention(t, "m")
    ax = fig.axes[1]
    assert ax.get_title() == "mc (acc)"
    assert ax.get_ylabel() == "change of the English (en) score"
    assert ax.get_xlabel() == "mean change over the other 3 languages"
    points = {}
    for collection in ax.collections:
        for xy in collection.get_offsets():
            points.setdefault(collection.get_label(), []).append(tuple(xy))
    assert set(points) == {f"{b}, {d}" for b in ("4-bit NF4 QLoRA", "16-bit LoRA") for d in ("gen_data", "tra")}
    assert all(len(xy) == 2 for xy in points.values())  # one point per rank
    others = np.mean([gain(lang, "tra", 16, 4, "mc") for lang in ("de", "sw", "hi")])
    assert (pytest.approx(others), pytest.approx(-0.1)) in [(x, y) for x, y in points["4-bit NF4 QLoRA, tra"]]
    assert all(y == pytest.approx(-0.1) for _, y in points["4-bit NF4 QLoRA, tra"])
    assert all(y > 0 for _, y in points["16-bit LoRA, tra"])
    annotations = [a.get_text() for a in ax.texts]
    assert "tra-r16-q4" in annotations
    with pytest.raises(ValueError, match="'en'"):
        score_plots.english_retention(t[t["lang"] != "en"], "m")


def test_english_retention_labels_never_overlap(table):
    """Variants whose points coincide (here every variant of a dataset scores the same deltas) keep every label
    readable: no two label boxes, as the renderer draws them, intersect; each label still names its own point."""
    from maple.report.labels import text_box

    t = table.copy()
    variants = t["variant"] != "base"
    t.loc[variants, "delta_vs_base"] = np.where(t.loc[variants, "lang"] == "en", -0.02, 0.03)  # one shared point
    fig = score_plots.english_retention(t, "m")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = list(ax.texts)
        names = sorted(a.get_text() for a in labels)
        assert names == sorted(set(names)) and len(names) == t.loc[variants, "variant"].nunique()
        assert all(tuple(a.xy) == (pytest.approx(0.03), pytest.approx(-0.02)) for a in labels)
        boxes = [text_box(a, renderer) for a in labels]
        overlapping = [
            (labels[i].get_text(), labels[j].get_text())
            for i in range(len(boxes))
            for j in range(i + 1, len(boxes))
            if boxes[i].overlaps(boxes[j])
        ]
        assert not overlapping
        frame = ax.get_window_extent(renderer)
        assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
    style.plt.close(fig)


def test_label_places_are_deterministic_and_free():
    """maple.report.labels on its own: twenty labels on one point, placed twice, land in the same places, none
    overlapping."""
    import matplotlib.pyplot as plt
    from maple.report.labels import label_points, text_box

    places = []
    for _ in range(2):
        fig, ax = plt.subplots(figsize=(3, 3), layout="constrained")
        ax.scatter([0.5, 0.52], [0.5, 0.5])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        names = [f"variant-{i}" for i in range(20)]
        annotations = label_points(fig, [(ax, [(0.5, 0.5)] * 10 + [(0.52, 0.5)] * 10, names)])
        renderer = fig.canvas.get_renderer()
        boxes = [text_box(a, renderer) for a in annotations]
        assert not any(boxes[i].overlaps(boxes[j]) for i in range(20) for j in range(i + 1, 20))
        places.append([tuple(a.xyann) for a in annotations])
        plt.close(fig)
    assert places[0] == places[1]


def test_data_comparison_pairs_datasets_per_language(table):
    fig = score_plots.data_comparison(
        table, "m", dataset_labels={"gen_data": "gen_data (generate)", "tra": "tra (translate)"}
    )
    ax = fig.axes[1]
    assert ax.get_title() == "mc"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["de (high)", "en (high)", "hi (low)", "sw (low)"]
    by_label = {c.get_label(): c.get_offsets() for c in ax.collections}
    assert set(by_label) == {"gen_data (generate)", "tra (translate)"}
    gen_sw = np.mean([gain("sw", "gen", r, b, "mc") for r in (4, 16) for b in (4, 16)])
    assert by_label["gen_data (generate)"][3][0] == pytest.approx(gen_sw)
    assert by_label["tra (translate)"][3][0] - by_label["gen_data (generate)"][3][0] == pytest.approx(0.02)
    assert "4 shared rank x bits" in ax.get_xlabel()
    assert len([line for line in ax.get_lines() if line.get_color() == "grey"]) == 4  # one pair line per language
    with pytest.raises(ValueError, match="two datasets"):
        score_plots.data_comparison(make_table(datasets=("demo",)), "m")


def test_loss_curves_read_log_history_and_fall_back_to_the_final_loss():
    histories = {
        "demo-r4-q16": {
            "log_history": [
                {"loss": 3.0, "step": 10, "tokens_per_second": 5.0},
                {"loss": 2.0, "step": 20},
                {"train_loss": 2.5, "step": 20},
            ],
            "train_loss": 2.5,
            "global_step": 20,
        },
        "demo-r16-q4": {
            "log_history": [{"train_runtime": 1.0, "train_loss": 2.7, "step": 9}],
            "train_loss": 2.7,
            "global_step": 9,
        },
    }
    fig = run_plots.loss_curves(histories, "m")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "optimiser step" and ax.get_ylabel() == "training loss"
    assert ax.get_title() == "demo"
    lines = labelled_lines(ax)
    curve = lines["r4, 16-bit LoRA"]
    assert list(curve.get_xdata()) == [10, 20] and list(curve.get_ydata()) == [3.0, 2.0]
    assert curve.get_linestyle() == "-"
    final = lines["r16, 4-bit NF4 QLoRA (final mean loss only)"]
    assert list(final.get_xdata()) == [9] and list(final.get_ydata()) == [2.7]
    assert curve.get_color() != final.get_color()  # colour by rank


def write_benchmark(path, seconds: float) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\n" + f"{seconds}\t0:00:01\t100\n")
    return str(path)


def test_cost_table_sums_benchmarks_and_marks_the_pareto_front(tmp_path):
    table = make_table(datasets=("demo",), ranks=(4, 16), bits=(16,), tasks=("mc",))
    jobs = [
        {
            "model": "m",
            "variant": "base",
            "stage": "evaluate",
            "gpu": 1,
            "benchmark": write_benchmark(tmp_path / "e-base.tsv", 360.0),
        },
        {
            "model": "m",
            "variant": "demo-r4-q16",
            "stage": "finetune",
            "gpu": 1,
            "benchmark": write_benchmark(tmp_path / "f4.tsv", 3600.0),
        },
        {
            "model": "m",
            "variant": "demo-r4-q16",
            "stage": "evaluate",
            "gpu": 1,
            "benchmark": write_benchmark(tmp_path / "e4.tsv", 360.0),
        },
        {
            "model": "m",
            "variant": "demo-r16-q16",
            "stage": "finetune",
            "gpu": 1,
            "benchmark": write_benchmark(tmp_path / "f16.tsv", 7200.0),
        },
        {
            "model": "m",
            "variant": "demo-r16-q16",
            "stage": "evaluate",
            "gpu": 1,
            "benchmark": write_benchmark(tmp_path / "e16.tsv", 360.0),
        },
    ]
    cost = cost_table(table, jobs, {"m/demo-r4-q16": "cpu", "m/demo-r16-q16": "cpu"}).set_index("variant")
    assert cost.loc["demo-r4-q16", "finetune_s"] == 3600.0 and cost.loc["demo-r4-q16", "evaluate_s"] == 360.0
    assert cost.loc["demo-r16-q16", "hours"] == pytest.approx(2.1)
    assert cost.loc["base", "hours"] == pytest.approx(0.1) and cost.loc["base", "mean_delta"] == 0.0
    assert (cost["gpu_hours"] == 0).all()  # CPU: no GPU-hours claimed
    expected_r16 = np.mean([gain(lang, "gen", 16, 16, "mc") for lang in LANGS])
    assert cost.loc["demo-r16-q16", "mean_delta"] == pytest.approx(expected_r16)
    assert cost["pareto"].to_dict() == {"base": True, "demo-r16-q16": True, "demo-r4-q16": True}

    fig = run_plots.cost_vs_gain(cost.reset_index(), "m")
    ax = fig.axes[0]
    assert "job-hours" in ax.get_xlabel() and "CPU" in ax.get_xlabel() and "GPU-hours" not in ax.get_xlabel()
    front = labelled_lines(ax)["Pareto front"]
    np.testing.assert_allclose(front.get_xdata(), [0.1, 1.1, 2.1])
    assert {c.get_label() for c in ax.collections} == {"base model (evaluation only)", "16-bit LoRA"}

    jobs[3]["gpu"] = 2  # the rank-16 finetune on two GPUs: twice the GPU-hours, same wall clock
    gpu = cost_table(table, jobs, {"m/demo-r4-q16": "cuda", "m/demo-r16-q16": "cuda"}).set_index("variant")
    assert gpu.loc["demo-r16-q16", "gpu_hours"] == pytest.approx(4.1)
    assert gpu.loc["demo-r16-q16", "hours"] == pytest.approx(2.1)
    assert gpu.loc["base", "gpu_hours"] == pytest.approx(0.1)
    assert list(gpu["cost_hours"]) == list(gpu["gpu_hours"])
    ax = run_plots.cost_vs_gain(gpu.reset_index(), "m").axes[0]
    assert ax.get_xlabel().startswith("GPU-hours")
    np.testing.assert_allclose(labelled_lines(ax)["Pareto front"].get_xdata(), [0.1, 1.1, 4.1])


def test_pareto_front():
    assert list(pareto_front([1, 2, 3, 2], [0.1, 0.3, 0.2, 0.1])) == [True, True, False, False]
    assert list(pareto_front([1, 1], [0.2, 0.2])) == [True, True]  # ties dominate neither


def test_summary_names_the_best_variant_per_task_and_class(table):
    best = best_variants(table).set_index(["task", "resource"])
    row = best.loc[("mc", "low")]
    assert row["best_variant"] == "tra-r16-q16"
    assert row["base"] == pytest.approx(0.275)
    assert row["gain"] == pytest.approx(np.mean([gain(lang, "tra", 16, 16, "mc") for lang in ("sw", "hi")]))
    assert row["languages_improved"] == 2
    text = summary_markdown(table)
    assert "| mc | low | acc | 2 | 0.2750 | tra-r16-q16 |" in text
    assert text.startswith("# Results summary")


def test_reference_numbers_beside_this_run(tmp_path, table):
    path = tmp_path / "reference.csv"
    # A constructed reference file (not the paper's numbers): one per-language row, one task-level mean, one row
    # this run does not have.
    path.write_text(
        "model,variant,task,lang,value,source\n"
        "m,base,mc,sw,0.35,constructed\n"
        "m,base,gen,,0.40,constructed\n"
        "m,base,xnli,sw,0.33,constructed\n"
    )
    reference = load_reference(str(path))
    compared = reference_comparison(table, reference)
    assert list(compared["value_run"].round(6)[:2]) == [0.30, round(np.mean(list(BASE.values())), 6)]
    assert math.isnan(compared["value_run"][2])
    assert compared["difference"][0] == pytest.approx(-0.05)
    fig = run_plots.reference_comparison(compared, "m")
    assert [ax.get_title() for ax in fig.axes] == ["gen", "mc"]
    ax = fig.axes[1]
    assert ax.get_xlabel() == "published reference" and ax.get_ylabel() == "this run"
    assert [tuple(p) for c in ax.collections for p in c.get_offsets()] == [(0.35, 0.30)]
    assert "2 of 3 reference rows match" in summary_markdown(table, comparison=compared)
    bad = tmp_path / "bad.csv"
    bad.write_text("task,score\nmc,0.3\n")
    with pytest.raises(ValueError, match="value"):
        load_reference(str(bad))


# --- the figures of a real run ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_produces_every_supported_figure_from_its_tables(small_run):
    """The small run's figures exist as PNG and PDF, and redrawn from the run's tables they show its numbers."""
    import plot as plot_script

    workdir, _ = small_run
    results = workdir / "results"
    expected = ["score_vs_rank", "score_vs_bits", "delta_heatmap", "english_retention", "loss_curves", "cost_vs_gain"]
    for name in expected:
        assert (results / "plots" / "tiny" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert (results / "plots" / "tiny" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-", name
    assert not (results / "plots" / "tiny" / "data_comparison.png").exists()  # one dataset: not supported

    table = pd.read_csv(results / "tables" / "scores.csv")
    adapters = sorted(p.name for p in (results / "adapters" / "tiny" / "demo").iterdir())
    metrics = {f"demo-{a}": str(results / "adapters" / "tiny" / "demo" / a / "train_metrics.json") for a in adapters}
    inputs = dict(cost=str(results / "tables" / "cost.csv"), metrics_files=metrics)

    fig = plot_script.make_figure("score_vs_rank", "tiny", table, **inputs)
    ax = fig.axes[-1]  # demo_mc, 16-bit
    assert ax.get_title() == "demo_mc, 16-bit LoRA\n2 high, 1 low languages"
    low = labelled_lines(ax)["low-resource"]
    sw = table[(table["task"] == "demo_mc") & (table["variant"] == "demo-r4-q16") & (table["lang"] == "sw")]
    assert list(low.get_xdata()) == [4] and low.get_ydata()[0] == pytest.approx(sw["value"].iloc[0])

    fig = plot_script.make_figure("delta_heatmap", "tiny", table, **inputs)
    image = [ax for ax in fig.axes if ax.images and ax.get_title() == "demo_gen (exact_match)"][0].images[0]
    assert image.get_array().shape == (2, 2)  # en, de x two variants

    fig = plot_script.make_figure("english_retention", "tiny", table, **inputs)
    assert sorted(ax.get_title().split()[0] for ax in fig.axes) == ["demo_gen", "demo_mc"]

    fig = plot_script.make_figure("loss_curves", "tiny", table, **inputs)
    lines = labelled_lines(fig.axes[0])
    assert len(lines) == len(adapters)
    for _variant, path in metrics.items():
        steps, losses, _ = run_plots.loss_points(json.loads(open(path).read()))
        assert losses and all(np.isfinite(losses))

    cost = pd.read_csv(results / "tables" / "cost.csv")
    fig = plot_script.make_figure("cost_vs_gain", "tiny", table, **inputs)
    ax = fig.axes[0]
    assert "CPU" in ax.get_xlabel()
    xs = sorted(float(x) for c in ax.collections for x, _ in c.get_offsets())
    np.testing.assert_allclose(xs, sorted(cost["cost_hours"]))
    np.testing.assert_allclose(cost["cost_hours"], cost["hours"])  # CPU run: wall-clock hours, no GPU-hours


@pytest.mark.slow
def test_cost_comes_from_the_runs_benchmark_files(small_run):
    workdir, _ = small_run
    cost = pd.read_csv(workdir / "results" / "tables" / "cost.csv").set_index("variant")
    bench = workdir / "benchmarks"
    for variant in ("demo-r4-q4", "demo-r4-q16"):
        rank_bits = variant.removeprefix("demo-")
        finetune = pd.read_csv(bench / "finetune" / "tiny" / "demo" / f"{rank_bits}.tsv", sep="\t")["s"].mean()
        evaluate = sum(
            pd.read_csv(p, sep="\t")["s"].mean() for p in (bench / "evaluate" / "tiny" / variant).glob("*.tsv")
        )
        assert cost.loc[variant, "finetune_s"] == pytest.approx(finetune, abs=1e-3)
        assert cost.loc[variant, "evaluate_s"] == pytest.approx(evaluate, abs=1e-3)
        assert cost.loc[variant, "hours"] == pytest.approx((finetune + evaluate) / 3600, abs=1e-6)
        assert cost.loc[variant, "finetune_s"] > 0 and cost.loc[variant, "device"] == "cpu"
    assert cost.loc["base", "finetune_s"] == 0 and cost.loc["base", "evaluate_s"] > 0
    assert cost["pareto"].any()
    summary = (workdir / "results" / "tables" / "summary.md").read_text()
    assert "## tiny" in summary and "| demo_mc | low |" in summary and "Pareto front" in summary


@pytest.mark.slow
def test_reference_scores_in_the_config_add_a_table_and_a_figure(small_run, tmp_path):
    """A constructed reference file (made-up numbers, not the paper's) on a copy of the run: only the summary and
    the plots rerun, and the comparison table and figure appear."""
    src, config_path = small_run
    workdir = copy_run(src, tmp_path / "run")
    (workdir / "reference.csv").write_text(
        "model,variant,task,lang,value,source\n"
        "tiny,base,demo_mc,sw,0.5,constructed for this test\n"
        "tiny,demo-r4-q16,demo_mc,,0.25,constructed for this test\n"
    )
    config = yaml.safe_load(config_path.read_text())
    config["reference_scores"] = "reference.csv"
    config_file = workdir / "config.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    assert planned_jobs(workdir, config=config_file) == {"summarize": 1, "plot": 1, "all": 1}
    run_snakemake(workdir, "--cores", "1", "--resources", "gpu=1", config=config_file)
    results = workdir / "results"
    compared = pd.read_csv(results / "tables" / "reference_comparison.csv")
    scores = pd.read_csv(results / "tables" / "scores.csv")
    mc = scores[scores["task"] == "demo_mc"]
    base_sw = mc[(mc["variant"] == "base") & (mc["lang"] == "sw")]["value"].iloc[0]
    assert compared["value_run"][0] == pytest.approx(base_sw)
    assert compared["value_run"][1] == pytest.approx(mc[mc["variant"] == "demo-r4-q16"]["value"].mean())
    assert (results / "plots" / "tiny" / "reference_comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 of 2 reference rows match" in (results / "tables" / "summary.md").read_text()

    config["reference_scores"] = "missing.csv"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    failed = run_snakemake(workdir, "-n", config=config_file, check=False)
    assert failed.returncode != 0 and "reference_scores" in failed.stdout + failed.stderr
