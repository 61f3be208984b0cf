# Aggregate every score into one tidy table; summarise it (cost per configuration from the benchmark files, a
# Markdown summary, published reference numbers beside this run) and plot it. Outputs marked report() are the
# items of `snakemake --report results/report.html`, captioned by workflow/report/*.rst.


rule aggregate:
    input:
        scores=all_score_files(),
    output:
        csv=report(f"{R}/tables/scores.csv", caption=f"{CAPTIONS}/scores.rst", category="Tables"),
        # The grid cells without a score (config allow_missing, common.smk); header only in a complete run.
        missing=f"{R}/tables/missing.csv",
    log:
        "logs/aggregate/aggregate.log",
    conda:
        CONDA_ENV
    params:
        languages=STUDY.languages,
        seed=STUDY.seed,
        missing=MISSING_CELLS,
        code_version=STAGE_VERSIONS["aggregate"],
    script:
        "../scripts/aggregate.py"


rule summarize:
    input:
        **({"reference": REFERENCE} if REFERENCE else {}),
        csv=f"{R}/tables/scores.csv",
        benchmarks=list(dict.fromkeys(job["benchmark"] for job in BENCHMARK_JOBS)),
        adapters=[adapter_path(f) for f in STUDY.finetunes],
    output:
        **get_summary_outputs(),
    log:
        "logs/summarize/summarize.log",
    conda:
        CONDA_ENV
    params:
        jobs=BENCHMARK_JOBS,
        metrics_files={f"{m}/{v}": path for (m, v), path in TRAIN_METRICS.items()},
        code_version=STAGE_VERSIONS["summarize"],
    script:
        "../scripts/summarize.py"


rule plot:
    input:
        **({"reference_comparison": f"{R}/tables/reference_comparison.csv"} if REFERENCE else {}),
        csv=f"{R}/tables/scores.csv",
        cost=f"{R}/tables/cost.csv",
        adapters=get_model_adapters,
    output:
        **get_plot_outputs(),
    log:
        "logs/plot/{model}.log",
    conda:
        CONDA_ENV
    params:
        figures=FIGURES,
        metrics_files=get_model_train_metrics,
        dataset_labels={d: f"{d} ({spec['backend']})" for d, spec in STUDY.datasets.items()},
        english="en",
        code_version=STAGE_VERSIONS["plot"],
    script:
        "../scripts/plot.py"
