"""Every check the workflow makes of a config, offline and without Snakemake; for a YAML error it names the file,
line and column (Snakemake's own message for a --configfile names neither).

    python workflow/scripts/check_config.py CONFIG.yaml
"""

import os
import sys

from maple.config.validation import ConfigError, checked_study, load_yaml_strict

if __name__ == "__main__":
    path = sys.argv[1]
    try:
        _, study = checked_study(load_yaml_strict(path), config_files=[path], config_dir=os.getcwd())
    except ConfigError as error:
        sys.exit(f"Invalid config: {error}")
    print(f"{path}: valid ({len(study.finetunes)} finetunes, {len(study.evaluations())} evaluation jobs)")
