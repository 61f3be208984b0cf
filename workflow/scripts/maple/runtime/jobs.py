"""The thin layer between a Snakemake job and the pure functions: logging to the rule's log file, the GPU it runs
on (maple.runtime.devices) and threads."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import traceback

from maple.hub.cache import PREFETCHED_VARIABLE, HubAccessError
from maple.runtime.devices import claimed_devices

# What a job's log states about where it ran: enough to tell which SLURM job and GPU it had. Names only these
# variables, never the whole environment, so no token can reach a log.
PLACEMENT_VARIABLES = ("SLURM_JOB_ID", "SLURM_CPUS_PER_TASK", "CUDA_VISIBLE_DEVICES")
# A GPU job with hub.prefetch on: everything it loads was prefetched into the HF cache (maple.hub.prefetch).
HUB_OFFLINE_VARIABLES = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", PREFETCHED_VARIABLE: "1"}


def placement(devices=None) -> str:
    values = " ".join(f"{name}={os.environ.get(name, 'unset')}" for name in PLACEMENT_VARIABLES)
    return f"[maple] host={socket.gethostname()} {values}" + (f" {devices.describe()}" if devices else "")


@contextlib.contextmanager
def logged_to(path: str | None, gpus: int | None = None, hub_offline: bool = False):
    """Send this process's stdout and stderr (Python and C level) to the rule's log file.

    gpus: a GPU job's resources.gpu. The job then holds that many claimed devices (maple.runtime.devices) until it ends,
    with CUDA_VISIBLE_DEVICES set to them before anything imports torch; the log's first line names them.
    hub_offline: the job's resources.hub_offline (hub.prefetch on): the hub is switched off for it before anything
    imports huggingface_hub, which reads these variables once at import, and the log says so; otherwise whatever the
    job reads from the hub goes through the retrying transport (maple.hub.transport).

    A HubAccessError (a source that cannot be had, a hub fault: one line that says what to do) ends the job with that
    line on the console and its traceback in the log only."""
    if hub_offline:
        os.environ.update(HUB_OFFLINE_VARIABLES)
    try:
        with _logged(path, gpus, hub_offline):
            yield
    except HubAccessError as error:
        print(f"[maple] {error}" + (f" (log: {path})" if path else ""), file=sys.stderr, flush=True)
        raise SystemExit(1) from None


@contextlib.contextmanager
def _logged(path: str | None, gpus: int | None, hub_offline: bool):
    if not hub_offline:
        from maple.hub.transport import install

        install()
    with _redirected(path):
        if gpus is None:
            if path:
                print(placement(), flush=True)
            if hub_offline:
                print(hub_offline_line(), flush=True)
            yield
            return
        with claimed_devices(gpus) as devices:
            print(placement(devices), flush=True)
            if hub_offline:
                print(hub_offline_line(), flush=True)
            yield


@contextlib.contextmanager
def _redirected(path: str | None):
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
        except BaseException:
            # The log is where a user looks first: the error goes there too, not only to Snakemake's console.
            traceback.print_exc()
            raise
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


def hub_offline_line() -> str:
    values = " ".join(f"{name}={os.environ.get(name, 'unset')}" for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return f"[maple] hub offline (hub.prefetch): {values} HF_HOME={os.environ.get('HF_HOME', 'unset')}"


def runtime_for_attempt(minutes: int | str, attempt: int) -> int:
    """A job's SLURM runtime on its attempt (1, 2, ...): the first attempt's times the attempt, so that a job killed
    at its time limit is retried with more time (and resumes: evaluations from their saved requests, finetunes from
    their checkpoints). minutes: an integer, or a timespan as Snakemake reads it ("90m", "2h")."""
    if isinstance(minutes, str):
        from humanfriendly import parse_timespan

        minutes = max(round(parse_timespan(minutes) / 60), 1)
    return int(minutes) * max(int(attempt), 1)
