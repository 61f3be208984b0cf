# Data: the tiny demo base model and the instruction datasets with their held-out evaluation sets.


rule build_tiny_model:
    input:
        lexicon_files(template_languages()),
    output:
        directory(f"{R}/models/{{model}}"),
    log:
        "logs/build_tiny_model/{model}.log",
    benchmark:
        "benchmarks/build_tiny_model/{model}.tsv"
    wildcard_constraints:
        model=_alternatives(BUILT_MODELS),
    threads: ALL_CORES
    params:
        lexicon_dir=LEXICON_DIR,
        languages=template_languages(),
        seed=STUDY.seed,
        spec=STUDY.tiny_model,
    script:
        "../scripts/build_tiny_model.py"


rule synth_data:
    input:
        lambda wc: (
            lexicon_files(STUDY.datasets[wc.data]["languages"])
            if STUDY.datasets[wc.data]["backend"] == "template"
            else []
        ),
    output:
        train=f"{R}/data/{{data}}/train.jsonl",
        eval_dir=directory(f"{R}/data/{{data}}/eval"),
        stats=f"{R}/data/{{data}}/stats.json",
    log:
        "logs/synth_data/{data}.log",
    benchmark:
        "benchmarks/synth_data/{data}.tsv"
    params:
        spec=lambda wc: STUDY.datasets[wc.data],
        languages=lambda wc: {l: STUDY.languages[l] for l in STUDY.datasets[wc.data]["languages"]},
        seed=lambda wc: STUDY.data_seed(wc.data),  # datasets.<name>.seed, default: the global seed
        lexicon_dir=LEXICON_DIR,
    script:
        "../scripts/synth_data.py"
