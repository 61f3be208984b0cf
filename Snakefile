# maple-workflow: multilingual LoRA / QLoRA finetuning and evaluation (the MAPLE study), as a Snakemake DAG.
# The default config is the offline demo; a study is another config: snakemake --configfile config/maple.yaml


import os

# The demo config is the default; a config given with --configfile replaces it rather than merging into it, so
# that no demo language, task or model leaks into a study.
if not workflow.overwrite_configfiles:
    workflow.configfile(os.path.join(workflow.basedir, "config", "config.yaml"))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_output(),
    default_target: True
