"""Which GPU a job runs on: each GPU job claims free devices of its machine and sees only those.

A claim is an exclusive `flock` on one lock file per device (`gpu<ID>.lock` in MAPLE_GPU_LOCK_DIR, default
<tmp>/maple-gpu-locks, one subdirectory per SLURM allocation). The kernel drops a flock when the last descriptor of
its open file closes, so a claim ends with its job however the job ends: normally, by an exception, or killed with
SIGKILL; no stale claim survives.
A claimed job's CUDA_VISIBLE_DEVICES names its devices only (and CUDA_DEVICE_ORDER=PCI_BUS_ID, so that the number
in the log is nvidia-smi's), set before anything in the job touches CUDA.

CUDA_VISIBLE_DEVICES already set when the job starts (SLURM sets it for a job that asked for --gpus; or a user who
gives a run some GPUs of the machine) is the pool: a job that needs as many devices as it lists keeps it as it is
and claims nothing; a job that needs fewer claims its devices among those listed. No GPU at all (a laptop, the
demo): the job runs on the CPU and nothing is claimed.

MAPLE_FAKE_GPU_COUNT=N (tests) makes this machine have N GPUs, 0..N-1, with lock files fake-gpu<ID>.lock; it is
read here and nowhere else. Nothing here imports torch or initialises CUDA.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path

FAKE_COUNT_VARIABLE = "MAPLE_FAKE_GPU_COUNT"
LOCK_DIR_VARIABLE = "MAPLE_GPU_LOCK_DIR"
WAIT_VARIABLE = "MAPLE_GPU_WAIT_SECONDS"
DEFAULT_WAIT_SECONDS = 600.0
NVIDIA_PROC_DIR = Path("/proc/driver/nvidia/gpus")


class DeviceError(RuntimeError):
    """A GPU request this machine cannot meet (more than it has), or no device free in time."""


@dataclass(frozen=True)
class Placement:
    """The devices a job runs on and how it got them: claimed (locks held), kept (set before the job), cpu (none)."""

    devices: tuple[str, ...]
    how: str  # claimed | kept | cpu | none (the job asked for no GPU)

    def describe(self) -> str:
        return f"gpus={','.join(self.devices) or '-'}({self.how})"


def fake_gpu_count(environ=os.environ) -> int | None:
    value = environ.get(FAKE_COUNT_VARIABLE)
    if value is None or value.strip() == "":
        return None
    try:
        count = int(value)
    except ValueError:
        raise DeviceError(f"{FAKE_COUNT_VARIABLE}={value!r}: expected a number of GPUs") from None
    if count < 0:
        raise DeviceError(f"{FAKE_COUNT_VARIABLE}={value!r}: expected a number of GPUs >= 0")
    return count


def machine_gpus(environ=os.environ) -> list[str]:
    """Device numbers of this machine's GPUs, found without CUDA: the driver's /proc entries, else `nvidia-smi -L`."""
    fake = fake_gpu_count(environ)
    if fake is not None:
        return [str(i) for i in range(fake)]
    if NVIDIA_PROC_DIR.is_dir():
        count = sum(1 for entry in NVIDIA_PROC_DIR.iterdir() if entry.is_dir())
        if count:
            return [str(i) for i in range(count)]
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            listed = ""
        count = sum(1 for line in listed.splitlines() if line.startswith("GPU "))
        return [str(i) for i in range(count)]
    return []


def visible_devices(environ=os.environ) -> list[str] | None:
    """The entries of CUDA_VISIBLE_DEVICES (numbers, GPU-/MIG- UUIDs), or None where it is not set."""
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    devices = [d.strip() for d in value.split(",") if d.strip()]
    # CUDA stops at the first invalid entry: "-1" (a common way to hide every GPU) leaves none.
    for i, device in enumerate(devices):
        if device.startswith("-"):
            return devices[:i]
    return devices


def device_pool(environ=os.environ) -> list[str]:
    """The devices this machine's jobs share: CUDA_VISIBLE_DEVICES where it is set, else every GPU."""
    visible = visible_devices(environ)
    return machine_gpus(environ) if visible is None else visible


def check_gpu_request(requested: int | None, per_job: int, environ=os.environ) -> str | None:
    """Before any job starts (a local run): --resources gpu=N and the GPUs one job asks for against this machine.

    Raises DeviceError for more than the machine has; returns a warning when it has no GPU (jobs run on the CPU)."""
    pool = device_pool(environ)
    if not pool:
        if requested and requested > 1:
            return (
                f"no GPU found on this machine: the GPU jobs run on the CPU, {requested} at once (--resources "
                f"gpu={requested})"
            )
        return None
    where = "CUDA_VISIBLE_DEVICES" if visible_devices(environ) is not None else "this machine"
    if requested is not None and requested > len(pool):
        raise DeviceError(
            f"--resources gpu={requested} asks for more GPUs than {where} has ({len(pool)}: {','.join(pool)}); "
            f"use --resources gpu={len(pool)} or fewer"
        )
    if per_job > len(pool):
        raise DeviceError(f"a GPU job asks for {per_job} GPUs (config gpu:) but {where} has {len(pool)}")
    return None


def threads_per_gpu_job(setting, cores: int | None, gpu_slots: int | None, local: bool, all_cores: int) -> int:
    """The threads of a GPU job (finetune, evaluate_*).

    setting: the config's gpu_job_threads, an integer or "auto". auto: on this machine, its cores shared by the GPU
    jobs that run at once (cores // gpu_slots, gpu_slots: --resources gpu, else this machine's GPU count, else 1);
    where each job is its own cluster job (SLURM), every core of the job (all_cores: capped by --cores there);
    without --cores (--report, --lint), all_cores."""
    if setting != "auto":
        return max(1, int(setting))
    if not local or not cores:
        return all_cores
    return max(1, cores // max(1, gpu_slots or 1))


def lock_dir(environ=os.environ) -> Path:
    """MAPLE_GPU_LOCK_DIR, else <tmp>/maple-gpu-locks; inside a SLURM allocation a subdirectory of its own (the
    allocation's device numbers are its own: GPU 0 of one job is not GPU 0 of another job on the same node)."""
    base = Path(environ.get(LOCK_DIR_VARIABLE) or os.path.join(tempfile.gettempdir(), "maple-gpu-locks"))
    job = environ.get("SLURM_JOB_ID")
    return base / f"slurm-{re.sub(r'[^0-9A-Za-z_]', '_', job)}" if job else base


def _lock_name(device: str, fake: bool) -> str:
    return ("fake-gpu" if fake else "gpu") + re.sub(r"[^A-Za-z0-9_.-]", "_", device) + ".lock"


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file (a shared lock dir): a read descriptor locks as well
        return os.open(path, os.O_RDONLY)


def try_claim(device: str, directory: Path, fake: bool = False) -> int | None:
    """An exclusive flock on the device's lock file: the open descriptor, or None where another process holds it."""
    fd = _open_lock(directory / _lock_name(device, fake))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    with contextlib.suppress(OSError):  # who holds it, for the message of a job that waits (not the lock itself)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid={os.getpid()} since={time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
    return fd


def release(fds) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(fd)


def holders(pool, directory: Path, fake: bool = False) -> str:
    parts = []
    for device in pool:
        with contextlib.suppress(OSError):
            text = (directory / _lock_name(device, fake)).read_text().strip()
            parts.append(f"{device}: {text or '?'}")
    return "; ".join(parts)


def _make_lock_dir(directory: Path) -> None:
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # shared by every user of the machine, like /tmp
            directory.chmod(0o1777)


@contextlib.contextmanager
def claimed_devices(
    needed: int,
    environ: MutableMapping[str, str] = os.environ,
    wait_seconds: float | None = None,
    poll_seconds: float = 0.2,
    log=print,
) -> Iterator[Placement]:
    """Hold `needed` free devices of this machine for the duration, with CUDA_VISIBLE_DEVICES set to them.

    Waits for devices held by other jobs (up to MAPLE_GPU_WAIT_SECONDS, default 600) and raises DeviceError then,
    or at once when the machine has fewer than needed. Restores the environment afterwards."""
    needed = int(needed)
    visible = visible_devices(environ)
    if needed <= 0:
        # A job that asked for no GPU must not land on one another job claimed.
        with _environment(environ, {"CUDA_VISIBLE_DEVICES": ""} if (visible is None or visible) else {}):
            yield Placement((), "none")
        return
    pool = device_pool(environ)
    if not pool:
        yield Placement((), "cpu")
        return
    where = "CUDA_VISIBLE_DEVICES" if visible is not None else "this machine"
    if needed > len(pool):
        raise DeviceError(f"this job needs {needed} GPU(s); {where} has {len(pool)} ({','.join(pool)})")
    if visible is not None and len(visible) == needed:
        yield Placement(tuple(visible), "kept")
        return

    fake = fake_gpu_count(environ) is not None
    directory = lock_dir(environ)
    _make_lock_dir(directory)
    if wait_seconds is None:
        wait_seconds = float(environ.get(WAIT_VARIABLE) or DEFAULT_WAIT_SECONDS)
    deadline = time.monotonic() + wait_seconds
    said_waiting = False
    while True:
        held: list[tuple[str, int]] = []
        for device in pool:
            fd = try_claim(device, directory, fake)
            if fd is not None:
                held.append((device, fd))
                if len(held) == needed:
                    break
        if len(held) == needed:
            break
        release(fd for _, fd in held)  # all or nothing: two multi-GPU jobs must not each hold half
        if time.monotonic() >= deadline:
            raise DeviceError(
                f"no {needed} free GPU(s) of {where} ({','.join(pool)}) within {wait_seconds:.0f} s "
                f"({WAIT_VARIABLE}); held: {holders(pool, directory, fake)}"
            )
        if not said_waiting:
            log(f"[maple] waiting for {needed} free GPU(s) of {','.join(pool)}; held: {holders(pool, directory, fake)}")
            said_waiting = True
        time.sleep(poll_seconds)
    devices = tuple(device for device, _ in held)
    settings = {"CUDA_VISIBLE_DEVICES": ",".join(devices)}
    if "CUDA_DEVICE_ORDER" not in environ and not fake:
        settings["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    try:
        with _environment(environ, settings):
            yield Placement(devices, "claimed")
    finally:
        release(fd for _, fd in held)


@contextlib.contextmanager
def _environment(environ: MutableMapping[str, str], settings: dict[str, str]):
    saved = {name: environ.get(name) for name in settings}
    environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
