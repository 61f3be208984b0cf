# Aggregate every score into one tidy table; summarise it (cost per configuration from the benchmark files, a
# Markdown summary, published reference numbers beside this run) and plot it. Outputs marked report() are the
# items of `snakemake --report results/report.html`, captioned by workflow/report/*.rst.
from maple.figures import figures_for_study  # noqa: E402

REFERENCE = config.get("reference_scores")
if REFERENCE and not os.path.isfile(REFERENCE):
    raise WorkflowError(f"Invalid config: reference_scores: no such file {REFERENCE!r} (relative to {os.getcwd()})")
FIGURES = figures_for_study(
    list(STUDY.datasets),
    {alias: list(task.languages) for alias, task in STUDY.tasks.items()},
    bool(REFERENCE),
)
CAPTIONS = "../report"


rule aggregate:
    input:
        scores=all_score_files(),
    output:
        csv=report(f"{R}/tables/scores.csv", caption=f"{CAPTIONS}/scores.rst", category="Tables"),
        # The grid cells without a score (config allow_missing, common.smk); header only in a complete run.
        missing=f"{R}/tables/missing.csv",
    log:
        "logs/aggregate/aggregate.log",
    params:
        languages=STUDY.languages,
        seed=STUDY.seed,
        missing=MISSING_CELLS,
    script:
        "../scripts/aggregate.py"


# Every gpu job's benchmark file (the rules' own `benchmark:` paths), as records for the cost table.
BENCHMARK_JOBS = [
    {
        "model": f.model,
        "variant": f.variant,
        "stage": "finetune",
        "benchmark": str(rules.finetune.benchmark).format(model=f.model, data=f.data, rank=f.rank, bits=f.bits),
        "gpu": STUDY.finetune_params.get("gpu", 1),
    }
    for f in STUDY.finetunes
] + [
    {
        "model": m,
        "variant": v,
        "stage": "evaluate",
        "benchmark": str(getattr(rules, f"evaluate_{t}").benchmark).format(model=m, variant=v),
        "gpu": STUDY.evaluation_params.get("gpu", 1),
    }
    for m, v, t in STUDY.evaluations()
]
# (model, variant) -> its adapter's train_metrics.json; the adapter directory is the rules' input.
TRAIN_METRICS = {(f.model, f.variant): f"{adapter_path(f)}/train_metrics.json" for f in STUDY.finetunes}
SUMMARY_OUTPUTS = {
    "summary": report(f"{R}/tables/summary.md", caption=f"{CAPTIONS}/summary.rst", category="Tables"),
    "cost": report(f"{R}/tables/cost.csv", caption=f"{CAPTIONS}/cost.rst", category="Tables"),
}
if REFERENCE:
    SUMMARY_OUTPUTS["reference_comparison"] = report(
        f"{R}/tables/reference_comparison.csv", caption=f"{CAPTIONS}/reference_table.rst", category="Tables"
    )
PLOT_OUTPUTS = {}
for _figure in FIGURES:
    PLOT_OUTPUTS[_figure] = report(
        f"{R}/plots/{{model}}/{_figure}.png",
        caption=f"{CAPTIONS}/{_figure}.rst",
        category="Figures",
        subcategory="{model}",
        labels={"model": "{model}", "figure": _figure.replace("_", " ")},
    )
    PLOT_OUTPUTS[f"{_figure}_pdf"] = f"{R}/plots/{{model}}/{_figure}.pdf"


rule summarize:
    input:
        **({"reference": REFERENCE} if REFERENCE else {}),
        csv=f"{R}/tables/scores.csv",
        benchmarks=[job["benchmark"] for job in BENCHMARK_JOBS],
        adapters=[adapter_path(f) for f in STUDY.finetunes],
    output:
        **SUMMARY_OUTPUTS,
    log:
        "logs/summarize/summarize.log",
    params:
        jobs=BENCHMARK_JOBS,
        metrics_files={f"{m}/{v}": path for (m, v), path in TRAIN_METRICS.items()},
    script:
        "../scripts/summarize.py"


rule plot:
    input:
        **({"reference_comparison": f"{R}/tables/reference_comparison.csv"} if REFERENCE else {}),
        csv=f"{R}/tables/scores.csv",
        cost=f"{R}/tables/cost.csv",
        adapters=lambda wc: [adapter_path(f) for f in STUDY.finetunes if f.model == wc.model],
    output:
        **PLOT_OUTPUTS,
    log:
        "logs/plot/{model}.log",
    params:
        figures=FIGURES,
        metrics_files=lambda wc: {v: path for (m, v), path in TRAIN_METRICS.items() if m == wc.model},
        dataset_labels={d: f"{d} ({spec['backend']})" for d, spec in STUDY.datasets.items()},
        english="en",
    script:
        "../scripts/plot.py"
