"""The thin layer between a Snakemake job and the pure functions: logging to the rule's log file and threads."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def logged_to(path: str | None):
    """Send this process's stdout and stderr (Python and C level) to the rule's log file."""
    if not path:
        yield
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def use_threads(threads: int) -> None:
    """Keep torch within the job's cores so parallel jobs do not oversubscribe the machine."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
