"""Every check the workflow makes of a config, offline and without Snakemake; for a YAML error it names the file,
line and column (Snakemake's own message for a --configfile names neither). It then prints the study's cost
estimate as every plan does (the GPU jobs, their shards and parts: maple.cost.plan).

    python workflow/scripts/check_config.py CONFIG.yaml
"""

import os
import sys

from maple.config.validation import ConfigError, checked_study, load_yaml_strict
from maple.cost.plan import study_plan
from maple.cost.requests import TokenCountsError
from maple.cost.table import total_line
from maple.cost.throughput import ThroughputError

if __name__ == "__main__":
    path = sys.argv[1]
    try:
        config, study = checked_study(load_yaml_strict(path), config_files=[path], config_dir=os.getcwd())
        rows = study_plan(study, config["estimate"]).estimate
    except (ConfigError, ThroughputError, TokenCountsError) as error:
        sys.exit(f"Invalid config: {error}")
    evaluation = sum(1 for r in rows if r["stage"] == "evaluate")
    print(f"{path}: valid ({len(study.finetunes)} finetunes, {evaluation} evaluation jobs)")
    print(total_line(rows, study.evaluation_params["max_job_hours"]).rsplit(";", 1)[0])  # no estimate.md written
