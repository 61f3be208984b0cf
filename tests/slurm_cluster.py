"""A real one-node SLURM cluster on this machine for tests (tests/slurm/cluster.sh), as a context manager.

    from slurm_cluster import local_slurm

    @pytest.fixture(scope="module")
    def slurm(tmp_path_factory):
        with local_slurm(tmp_path_factory) as cluster:
            yield cluster

The cluster needs root and apt (to install slurmctld, slurmd, slurm-client and munge once). Where it cannot be had
(cluster.sh exits 3) the test is skipped, except when CI=true: then it fails, so that CI never skips it silently.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SH = REPO / "tests" / "slurm" / "cluster.sh"
CANNOT_RUN_HERE = 3  # cluster.sh: not root, or no apt to install the packages with


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@dataclass
class SlurmCluster:
    state_dir: Path
    slurm_conf: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess:
        """Run a SLURM client command (sinfo, squeue, scontrol, ...) against this cluster."""
        return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout, env=self.env)

    def logs(self) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.state_dir / name
            if path.exists():
                parts.append(
                    f"----- {path} (tail) -----\n" + "\n".join(path.read_text(errors="replace").splitlines()[-40:])
                )
        return "\n".join(parts)


def _env(slurm_conf: Path) -> dict[str, str]:
    """This process's environment with SLURM_CONF set and the running Python's bin dir first on PATH."""
    env = dict(os.environ)
    env["SLURM_CONF"] = str(slurm_conf)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def _cluster_sh(action: str, state_dir: Path, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(CLUSTER_SH), action, str(state_dir)], capture_output=True, text=True, timeout=timeout
    )


@contextlib.contextmanager
def local_slurm(tmp_path_factory, start_timeout: int = 900) -> Iterator[SlurmCluster]:
    """Start the cluster in a fresh temp dir, yield a SlurmCluster, and stop the daemons afterwards.

    start_timeout is generous because the first start on a fresh machine installs the packages with apt.
    """
    state_dir = Path(tmp_path_factory.mktemp("slurm"))
    try:
        started = _cluster_sh("start", state_dir, start_timeout)
    except subprocess.TimeoutExpired as e:
        _cluster_sh("stop", state_dir, 60)
        pytest.fail(f"tests/slurm/cluster.sh start did not finish in {start_timeout}s: {e.stderr!r}")
    if started.returncode == CANNOT_RUN_HERE:
        reason = f"no local SLURM cluster here: {started.stderr.strip() or started.stdout.strip()}"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: the SLURM tests must run in CI, not be skipped)")
        pytest.skip(reason)
    if started.returncode != 0:
        _cluster_sh("stop", state_dir, 60)
        pytest.fail(f"tests/slurm/cluster.sh start failed ({started.returncode}):\n{started.stdout}\n{started.stderr}")
    slurm_conf = state_dir / "slurm.conf"
    cluster = SlurmCluster(state_dir=state_dir, slurm_conf=slurm_conf, env=_env(slurm_conf))
    try:
        yield cluster
    finally:
        stopped = _cluster_sh("stop", state_dir, 120)
        if stopped.returncode != 0:
            print(f"tests/slurm/cluster.sh stop failed ({stopped.returncode}): {stopped.stderr}", file=sys.stderr)
