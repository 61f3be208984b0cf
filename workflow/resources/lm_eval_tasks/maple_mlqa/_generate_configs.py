"""Write maple_mlqa_<context>_<question>.yaml for each of lm-eval's mlqa_* tasks: python _generate_configs.py.

Each file includes lm-eval's own task (`include: lm_eval:mlqa/<file>`: prompt, splits, metrics and answer
normalisation stay lm-eval's) and changes only where its data comes from: facebook/mlqa's default branch holds a
loading script, which datasets 4+ refuses, so the task reads its config from the hub's parquet conversion
(maple.hub.task_sources.parquet_source). maple.hub.task_sources.stage_tasks makes the include absolute at run time.
Run with the lm-eval the workflow pins: the task list and split names are read from its installed files.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "scripts"))

from maple.hub import task_sources  # noqa: E402

if __name__ == "__main__":
    task_sources.write_wrappers("mlqa", "mlqa_*_*.yaml", HERE)
