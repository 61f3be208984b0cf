# Data: the tiny demo base model and the instruction datasets with their held-out evaluation sets.


rule build_tiny_model:
    input:
        lexicon_files(template_languages()),
    output:
        directory(f"{R}/models/{{model}}"),
    wildcard_constraints:
        model=_alternatives(BUILT_MODELS),
    params:
        lexicon_dir=LEXICON_DIR,
        languages=template_languages(),
        seed=STUDY.seed,
        spec=STUDY.tiny_model,
    threads: ALL_CORES
    log:
        "logs/build_tiny_model/{model}.log",
    benchmark:
        "benchmarks/build_tiny_model/{model}.tsv"
    script:
        "../scripts/build_tiny_model.py"


rule synth_data:
    input:
        lambda wc: lexicon_files(STUDY.datasets[wc.data]["languages"])
        if STUDY.datasets[wc.data]["backend"] == "template"
        else [],
    output:
        train=f"{R}/data/{{data}}/train.jsonl",
        eval_dir=directory(f"{R}/data/{{data}}/eval"),
        stats=f"{R}/data/{{data}}/stats.json",
    params:
        spec=lambda wc: STUDY.datasets[wc.data],
        languages=lambda wc: {l: STUDY.languages[l] for l in STUDY.datasets[wc.data]["languages"]},
        seed=lambda wc: STUDY.data_seed(wc.data),  # datasets.<name>.seed, default: the global seed
        lexicon_dir=LEXICON_DIR,
    log:
        "logs/synth_data/{data}.log",
    benchmark:
        "benchmarks/synth_data/{data}.tsv"
    script:
        "../scripts/synth_data.py"
