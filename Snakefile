# maple-workflow: multilingual LoRA / QLoRA finetuning and evaluation (the MAPLE study), as a Snakemake DAG.
# The default config is the offline demo; a study is another config: snakemake --configfile config/maple.yaml


import os
import sys

from snakemake.utils import min_version

min_version("9.27")

# The demo config is the default; a config given with --configfile replaces it rather than merging into it, so
# that no demo language, task or model leaks into a study. It is read strictly first: Snakemake's own message for
# a YAML error names neither file nor line (for a --configfile Snakemake reads it before this file, so that
# message stands; `python workflow/scripts/check_config.py CONFIG` names both).
if not workflow.overwrite_configfiles:
    sys.path.insert(0, os.path.join(workflow.basedir, "workflow", "scripts"))
    from maple.config.validation import ConfigError, load_yaml_strict
    from snakemake.exceptions import WorkflowError

    try:
        load_yaml_strict(os.path.join(workflow.basedir, "config", "config.yaml"))
    except ConfigError as error:
        raise WorkflowError(f"Invalid config: {error}")
    workflow.configfile(os.path.join(workflow.basedir, "config", "config.yaml"))


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/preflight.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
