# maple-workflow from the repository's root: `snakemake --cores all --resources gpu=1` runs the offline demo.
# The workflow itself is workflow/Snakefile (the entry point for the Snakemake workflow catalog, snakedeploy and
# `module`, docs/module.md). Included with its default target (rule all): an `include:` directive keeps the
# including file's default target, which this file has none of.

workflow.include("workflow/Snakefile", overwrite_default_target=True)
