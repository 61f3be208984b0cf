"""Each stage's code version. Its rules pass it as the param `code_version`, so that bumping a stage's number reruns
that stage and what follows (Snakemake's params trigger), and nothing else. Bump it with a change to the stage's code
(the rule's script or the maple modules it uses) that would change its results; a refactoring that keeps results
as they are leaves it (docs/reruns-and-faults.md, "What reruns")."""

STAGE_VERSIONS = {
    "build_tiny_model": 1,
    "convert_gguf": 1,
    "synth_data": 1,
    "finetune": 1,
    "evaluate": 2,
    "merge_scores": 1,
    "aggregate": 1,
    "summarize": 1,
    "plot": 2,
    "preflight": 2,
    "prefetch": 1,
}
