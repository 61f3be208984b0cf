# Aggregate every score into one tidy table, and plot it.


rule aggregate:
    input:
        scores=all_score_files(),
    output:
        csv=f"{R}/tables/scores.csv",
    params:
        languages=STUDY.languages,
        seed=STUDY.seed,
    log:
        "logs/aggregate/aggregate.log",
    script:
        "../scripts/aggregate.py"


rule plot:
    input:
        csv=f"{R}/tables/scores.csv",
    output:
        score_vs_rank=f"{R}/plots/{{model}}/score_vs_rank.png",
        delta_heatmap=f"{R}/plots/{{model}}/delta_heatmap.png",
    log:
        "logs/plot/{model}.log",
    script:
        "../scripts/plot.py"
