"""Write maple_mlqa_<context>_<question>.yaml for each of lm-eval's mlqa_* tasks: python _generate_configs.py.

Each file is lm-eval's own task written out whole (its includes merged: prompt, splits, metrics and answer
normalisation (utils.py, copied beside them) stay lm-eval's), renamed maple_<task>, tagged maple_mlqa, and changed
only in where its data comes from: facebook/mlqa's default branch holds a loading script, which datasets 4+ refuses,
so the task reads its config from the hub's parquet conversion (maple.hub.task_sources.parquet_source). The files need
nothing of this workflow: `lm_eval --include_path workflow/resources/lm_eval_tasks/maple_mlqa` reads them. Run with
the lm-eval the workflow pins: the task list, split names and code are read from its installed files. README.md here
says what changes and why.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "scripts"))

from maple.hub import task_sources  # noqa: E402

if __name__ == "__main__":
    task_sources.write_wrappers("mlqa", "mlqa_*_*.yaml", HERE)
