"""Evaluation that resumes inside a job (docs/reruns-and-faults.md, "An evaluation resumes"): the requests lm-eval
sends the model (loglikelihood, loglikelihood_rolling, generate_until) are answered in chunks of a fixed number of
requests, and each chunk's responses are saved atomically in a work directory beside the unit's score file
(<score>.work/, not an output, so Snakemake leaves it when it removes a failed job's outputs). A job killed or timed
out and run again (a rerun, or Snakemake's retry with a longer runtime) reads the chunks it finished and computes the
rest; the work directories go once the job's score files are in place.

Why chunks of our own rather than lm-eval's CachingLM: CachingLM sends all uncached requests to the model in one call,
so a resumed run would batch the remaining requests differently from an uninterrupted run (other padding, other
kernels), and its scores could differ in the last bits. Here every run, resumed or not, sends the model the same
chunks, so a resumed job's scores are the uninterrupted job's, byte for byte. A chunk records the hash of its
requests, and the work directory the fingerprint of what answers them (model files, adapter, bits, batch size,
software, the task's settings, the unit): a chunk of other requests is recomputed, and a directory left by another
model, adapter or setting is removed before anything is read from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from maple.runtime.atomic import write_json
from maple.runtime.provenance import adapter_hash, software_versions

REQUEST_TYPES = ("loglikelihood", "loglikelihood_rolling", "generate_until")
# Requests per saved chunk: a killed job loses at most one chunk's work. Large enough that the model's batches stay
# full (lm-eval sorts and batches within a chunk), small enough that a chunk of generations takes minutes at most.
CHUNK_REQUESTS = 512
# Test knobs, read here only (tests/test_request_cache.py, tests/test_slurm_retries.py); leave them unset in a study:
# the chunk size changes how requests are batched, and the delay makes every computed request that much slower.
CHUNK_VARIABLE = "MAPLE_EVAL_CHUNK_REQUESTS"
DELAY_VARIABLE = "MAPLE_TEST_SECONDS_PER_REQUEST"
FINGERPRINT_FILE = "fingerprint.json"


def work_dir_of(score_file: str | os.PathLike) -> Path:
    """The unit's work directory, beside its score file: results/scores/.../en.json -> results/scores/.../en.work."""
    return Path(score_file).with_suffix(".work")


def _env_number(name: str, kind, default):
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        number = kind(value)
    except ValueError:
        number = -1
    if number < 0 or (kind is int and number == 0):
        raise ValueError(f"{name}: expected a positive {kind.__name__}, got {value!r}")
    return number


def chunk_requests() -> int:
    return _env_number(CHUNK_VARIABLE, int, CHUNK_REQUESTS)


def job_fingerprint(
    *, base_source, revision, adapter_dir, merged, bits, batch_size, task, prompt_format, seed, **_provenance
) -> dict:
    """What answers a job's requests (score_units' keywords; the others, such as load times, do not count). A local model by its files' sizes and times (hashing a 7B model's weights would
    cost a minute per job; a rebuilt model has new times), a hub model by its pinned revision, an adapter by its hash."""
    model = {"source": str(base_source), "revision": revision}
    if os.path.isdir(base_source):
        root = Path(base_source)
        model["files"] = {
            str(p.relative_to(root)): [p.stat().st_size, p.stat().st_mtime_ns]
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }
    return {
        "model": model,
        "adapter_sha256": adapter_hash(adapter_dir) if adapter_dir else None,
        "merged": bool(merged),
        "bits": bits,
        "batch_size": batch_size,
        "task": task.job_param(),
        "prompt_format": prompt_format,
        "seed": seed,
        "chunk_requests": chunk_requests(),
        "software": software_versions(),
    }


def _requests_key(name: str, requests) -> str:
    """The hash of a chunk's requests as lm-eval sends them (their arguments: context, continuation or gen_kwargs)."""
    text = json.dumps([name] + [list(r.args) for r in requests], sort_keys=True, default=repr, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _read_chunk(path: Path, key: str, n: int):
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    responses = saved.get("responses")
    if saved.get("requests") != key or not isinstance(responses, list) or len(responses) != n:
        return None
    # loglikelihood answers are (logprob, is_greedy) tuples, as lm-eval's models return them
    return [tuple(r) for r in responses] if saved.get("tuples") else responses


def _prepared(work_dir: Path, fingerprint: dict, label: str) -> None:
    """work_dir with this fingerprint: a directory left with another (or none) is removed first."""
    fingerprint = json.loads(json.dumps(fingerprint, default=repr))
    path = work_dir / FINGERPRINT_FILE
    if work_dir.exists():
        try:
            same = json.loads(path.read_text(encoding="utf-8")) == fingerprint
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(work_dir)
            print(f"[maple] {label}: {work_dir} was left by another model, adapter or setting: removed", flush=True)
    if not path.exists():
        work_dir.mkdir(parents=True, exist_ok=True)
        write_json(path, fingerprint)


@contextlib.contextmanager
def cached_requests(lm, unit, fingerprint: dict):
    """Within the block, lm's request methods answer in chunks saved in the work directory of one unit of a job
    (maple.evaluate.units.Unit; fingerprint: job_fingerprint's); each call logs how many of its requests came from
    saved chunks and how many were computed."""
    work_dir, label = work_dir_of(unit.score_file), unit.label
    _prepared(work_dir, {**fingerprint, "unit": label}, label)
    size, delay = chunk_requests(), _env_number(DELAY_VARIABLE, float, 0.0)
    saved_attributes = {}

    def chunked(name, compute):
        def answer(requests, *args, **kwargs):
            call = counts.get(name, 0)  # simple_evaluate sends each request type once; counted to be safe
            counts[name] = call + 1
            responses, cached, computed = [], 0, 0
            for start in range(0, len(requests), size):
                part = requests[start : start + size]
                path = work_dir / f"{name}-{call}-{start // size:05d}.json"
                key = _requests_key(name, part)
                got = _read_chunk(path, key, len(part))
                if got is None:
                    got = list(compute(part, *args, **kwargs))
                    if delay:
                        time.sleep(delay * len(part))
                    tuples = bool(got) and isinstance(got[0], tuple)
                    write_json(path, {"requests": key, "tuples": tuples, "responses": got}, indent=None)
                    computed += len(part)
                else:
                    cached += len(part)
                responses.extend(got)
            print(
                f"[maple] {label} {name}: {len(requests)} requests, {cached} from the cache, {computed} computed",
                flush=True,
            )
            return responses

        return answer

    counts: dict[str, int] = {}
    for name in REQUEST_TYPES:
        if hasattr(lm, name):
            saved_attributes[name] = vars(lm).get(name)
            setattr(lm, name, chunked(name, getattr(lm, name)))
    # batch_size "auto": HFLM detects the batch size at each call; once per unit is what an unchunked run pays
    detect = getattr(lm, "_detect_batch_size", None)
    if detect is not None and getattr(lm, "batch_size", None) == "auto":
        detected = {}

        def detect_once(requests=None, pos=0):
            if requests is not None or pos:
                return detect(requests, pos)
            if "size" not in detected:
                detected["size"] = detect()
            return detected["size"]

        saved_attributes["_detect_batch_size"] = vars(lm).get("_detect_batch_size")
        lm._detect_batch_size = detect_once
    try:
        yield
    finally:
        for name, previous in saved_attributes.items():
            if previous is None:
                delattr(lm, name)
            else:
                setattr(lm, name, previous)


def remove_work_dirs(score_files) -> None:
    """Once a job's score files are in place, its units' work directories go."""
    for score_file in score_files:
        shutil.rmtree(work_dir_of(score_file), ignore_errors=True)
