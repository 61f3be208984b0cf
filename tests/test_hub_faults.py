"""Hub faults against the real hub server (olah on loopback, tests/hub_server.py) behind the tests' fault-injecting
proxy (tests/fault_proxy.py), through the real huggingface_hub client with HF_ENDPOINT: an endpoint that does not
resolve or refuses, 429 with Retry-After and 503 for the first N requests or for good, an answer slower than
hub.timeout_s, a download reset or stalled after K bytes, a prefetch killed mid-download. Each case: what comes out
(success after retries, or the one line naming the endpoint, what failed and what to do), how long it took, and that
no pin, prefetch answer or cache entry is left looking complete."""

from __future__ import annotations

import csv
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_snakemake, small_config, write_config
from fault_proxy import Fault, FaultProxy, refusing_endpoint
from hub_server import OFFLINE_VARIABLES, OlahServer, build_mirror, hub_env
from test_hub_server import _require_olah, study_config

HUB_SERVER = str(Path(__file__).with_name("hub_server.py"))
UNRESOLVABLE = "http://no-such-host.invalid"
MANY = 10**6  # a fault for good


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    _require_olah()
    root = tmp_path_factory.mktemp("fault-mirror")
    return root / "mirrors", build_mirror(root)


@pytest.fixture(scope="module")
def server(mirror, tmp_path_factory):
    server = OlahServer(mirror[0], tmp_path_factory.mktemp("fault-olah"))
    yield server
    server.stop()


@pytest.fixture
def proxy(server):
    proxy = FaultProxy(server.endpoint)
    yield proxy
    proxy.stop()


def env_for(endpoint: str, hf_home: Path, retry_s: float = 8, timeout_s: float = 2) -> dict:
    env = hub_env(endpoint, hf_home)
    env.update({"MAPLE_HUB_RETRY_S": str(retry_s), "MAPLE_HUB_TIMEOUT_S": str(timeout_s)})
    return env


def run_hub(command: str, argument: Path, env: dict, timeout: float = 180) -> tuple[int, dict, float, str]:
    """`python hub_server.py <command> <argument>`: (exit status, its JSON answer, seconds taken, stderr)."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, HUB_SERVER, command, str(argument)], env=env, capture_output=True, text=True, timeout=timeout
    )
    lines = result.stdout.strip().splitlines()
    answer = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return result.returncode, answer, time.monotonic() - started, result.stderr


def model_config(tmp_path: Path) -> Path:
    """The test config with one hub model (org/tiny-hub on main) and the local tasks: preflight asks the hub about
    that model only."""
    config = small_config()
    config["models"] = {"hub": {"hub_id": "org/tiny-hub"}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def model_pins(tmp_path: Path, commit: str) -> Path:
    pins = {"models": {"org/tiny-hub@main": {"repo_id": "org/tiny-hub", "revision": "main", "commit": commit}}}
    path = tmp_path / "pins.json"
    path.write_text(json.dumps(pins), encoding="utf-8")
    return path


# --- preflight ----------------------------------------------------------------------------------------------------


def test_unresolvable_endpoint_is_one_line_at_once(tmp_path):
    """A host name that does not resolve is not retried: one line naming the endpoint, what failed and the fix."""
    code, outcome, seconds, stderr = run_hub("preflight", model_config(tmp_path), env_for(UNRESOLVABLE, tmp_path))
    assert code == 0, stderr[-3000:]
    assert outcome["pins"]["models"] == {}
    [line] = outcome["problems"]
    assert line.startswith(f"models.hub: model 'org/tiny-hub' at 'main': the hub at {UNRESOLVABLE} (HF_ENDPOINT): ")
    assert "the host name does not resolve" in line and "check the network (DNS) and HF_ENDPOINT" in line
    assert "tries" not in line and seconds < 30


def test_refused_connection_is_one_line_at_once(tmp_path):
    endpoint = refusing_endpoint()
    code, outcome, seconds, stderr = run_hub("preflight", model_config(tmp_path), env_for(endpoint, tmp_path))
    assert code == 0, stderr[-3000:]
    [line] = outcome["problems"]
    assert f"the hub at {endpoint} (HF_ENDPOINT): the connection is refused" in line
    assert "check HF_ENDPOINT (host and port)" in line and seconds < 30


def test_rate_limited_then_answers(proxy, mirror, tmp_path):
    """429 with Retry-After for the first two requests: waited out, then the commit is pinned as without faults."""
    proxy.add(Fault("/api/models/org/tiny-hub", times=2, status=429, retry_after=1))
    code, outcome, seconds, stderr = run_hub("preflight", model_config(tmp_path), env_for(proxy.endpoint, tmp_path))
    assert code == 0 and outcome["problems"] == [], stderr[-3000:]
    assert outcome["pins"]["models"]["org/tiny-hub@main"]["commit"] == mirror[1]["tiny-hub"]
    assert [what for _, _, what in proxy.seen].count("status 429") == 2
    assert seconds >= 2  # Retry-After honoured


def test_retry_after_beyond_the_retry_time_is_not_waited_for(proxy, tmp_path):
    """A 429 whose Retry-After lies past hub.retry_s: given up at once, the line naming the wait the hub asked for."""
    proxy.add(Fault("/api/", times=MANY, status=429, retry_after=3600))
    env = env_for(proxy.endpoint, tmp_path, retry_s=5)
    code, outcome, seconds, stderr = run_hub("preflight", model_config(tmp_path), env)
    assert code == 0, stderr[-3000:]
    [line] = outcome["problems"]
    assert "it answers HTTP 429 (rate limited) (Retry-After 3600 s; 1 try over 0 s, hub.retry_s 5 s)" in line, line
    assert "wait and run again (set HF_TOKEN: a token gets higher limits), or raise hub.retry_s" in line
    assert seconds < 30


def test_server_errors_past_the_retry_time_are_one_line(proxy, tmp_path):
    """503 for good: retried with backoff for hub.retry_s, then one line saying so; nothing pinned."""
    proxy.add(Fault("/api/", times=MANY, status=503))
    env = env_for(proxy.endpoint, tmp_path, retry_s=3)
    code, outcome, seconds, stderr = run_hub("preflight", model_config(tmp_path), env)
    assert code == 0, stderr[-3000:]
    assert outcome["pins"]["models"] == {}
    [line] = outcome["problems"]
    assert f"the hub at {proxy.endpoint} (HF_ENDPOINT): it answers HTTP 503 (server error)" in line
    assert "hub.retry_s 3 s" in line and "wait and run again, or raise hub.retry_s" in line
    assert [what for _, _, what in proxy.seen].count("status 503") >= 2
    assert seconds < 40


def test_slow_answer_is_retried_then_answers(proxy, mirror, tmp_path):
    """An answer slower than hub.timeout_s times out and is asked again."""
    proxy.add(Fault("/api/models/org/tiny-hub", times=1, delay=4))
    env = env_for(proxy.endpoint, tmp_path, timeout_s=1)
    code, outcome, _seconds, stderr = run_hub("preflight", model_config(tmp_path), env)
    assert code == 0 and outcome["problems"] == [], stderr[-3000:]
    assert outcome["pins"]["models"]["org/tiny-hub@main"]["commit"] == mirror[1]["tiny-hub"]
    assert any(what == "delay 4 s" for _, _, what in proxy.seen)


def test_hub_too_slow_for_good_is_one_line(proxy, tmp_path):
    proxy.add(Fault("/api/", times=MANY, delay=3))
    env = env_for(proxy.endpoint, tmp_path, retry_s=2, timeout_s=1)
    code, outcome, seconds, stderr = run_hub("preflight", model_config(tmp_path), env)
    assert code == 0, stderr[-3000:]
    [line] = outcome["problems"]
    assert "it did not answer in time (hub.timeout_s 1 s" in line and "raise hub.timeout_s / hub.retry_s" in line
    assert seconds < 40


# --- prefetch -----------------------------------------------------------------------------------------------------


def snapshot(hf_home: Path, commit: str) -> Path:
    return hf_home / "hub" / "models--org--tiny-hub" / "snapshots" / commit


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_cache_holds_no_partial_file(hf_home: Path, mirror_model: Path) -> None:
    """Every blob under its final name is a whole file of the repository; a partial one is named *.incomplete and
    linked from no snapshot."""
    whole = {sha256(p) for p in mirror_model.rglob("*") if p.is_file() and ".git" not in p.parts}
    blobs = hf_home / "hub" / "models--org--tiny-hub" / "blobs"
    for blob in blobs.iterdir() if blobs.exists() else []:
        if blob.name.endswith(".incomplete"):
            continue
        assert sha256(blob) in whole, f"{blob.name}: not a whole file of the repository"
    for link in (hf_home / "hub" / "models--org--tiny-hub" / "snapshots").rglob("*"):
        assert not link.name.endswith(".incomplete") and (link.is_dir() or link.resolve().exists())


def test_download_reset_once_is_fetched_anew(proxy, mirror, tmp_path):
    """The weights' download reset after 1000 bytes: the file is fetched again and the snapshot is whole."""
    mirrors, commits = mirror
    proxy.add(Fault("/model.safetensors", times=1, reset_after=1000, methods=("GET",)))
    hf_home = tmp_path / "hf"
    env = env_for(proxy.endpoint, hf_home)
    code, fetched, _seconds, stderr = run_hub("prefetch", model_pins(tmp_path, commits["tiny-hub"]), env)
    assert code == 0, stderr[-3000:]
    assert ("GET", f"/org/tiny-hub/resolve/{commits['tiny-hub']}/model.safetensors", "reset after 1000 bytes") in [
        (m, p, w) for m, p, w in proxy.seen
    ]
    weights = snapshot(hf_home, commits["tiny-hub"]) / "model.safetensors"
    assert Path(fetched["model:org/tiny-hub@main"]["path"]) == weights.parent
    assert sha256(weights) == sha256(mirrors / "models" / "org" / "tiny-hub" / "model.safetensors")
    assert_cache_holds_no_partial_file(hf_home, mirrors / "models" / "org" / "tiny-hub")


def test_download_reset_for_good_leaves_nothing_complete_then_rerun_loads_offline(proxy, mirror, tmp_path):
    """Every download of the weights reset: prefetch gives up after hub.retry_s with one line naming the repository
    at its pin, the endpoint and what to do; no snapshot entry of the weights, no answer. Run again with the hub
    healthy: complete, at the pinned commit, and the model loads from the cache with the hub offline."""
    from maple.hub.access import load_causal_lm, load_tokenizer

    mirrors, commits = mirror
    commit = commits["tiny-hub"]
    proxy.add(Fault("/model.safetensors", times=MANY, reset_after=1000, methods=("GET",)))
    hf_home = tmp_path / "hf"
    pins = model_pins(tmp_path, commit)
    code, answer, seconds, stderr = run_hub("prefetch", pins, env_for(proxy.endpoint, hf_home, retry_s=3))
    assert code == 1, stderr[-3000:]
    line = answer["error"]
    assert line.startswith(f"prefetch model 'org/tiny-hub' at 'main' ({commit[:12]}): the hub at {proxy.endpoint}")
    assert "the connection was cut during the transfer" in line and "run it again" in line
    assert "\n" not in line and seconds < 60
    assert [w for _, _, w in proxy.seen].count("reset after 1000 bytes") >= 2  # tried again before giving up
    assert not (snapshot(hf_home, commit) / "model.safetensors").exists()
    assert_cache_holds_no_partial_file(hf_home, mirrors / "models" / "org" / "tiny-hub")

    proxy.clear()
    code, fetched, _seconds, stderr = run_hub("prefetch", pins, env_for(proxy.endpoint, hf_home))
    assert code == 0, stderr[-3000:]
    assert Path(fetched["model:org/tiny-hub@main"]["path"]) == snapshot(hf_home, commit)
    cache = str(hf_home / "hub")
    model = load_causal_lm("org/tiny-hub", revision=commit, cache_dir=cache)  # this process: the hub offline
    tokenizer = load_tokenizer("org/tiny-hub", revision=commit, cache_dir=cache)
    assert model.config.model_type == "llama" and tokenizer("Jambo")["input_ids"]


def test_prefetch_killed_mid_download_leaves_nothing_complete_then_rerun_completes(proxy, mirror, tmp_path):
    """A prefetch killed (SIGKILL) while the weights are half downloaded: what it leaves is named *.incomplete and
    linked nowhere; the next prefetch completes the snapshot at the pinned commit."""
    mirrors, commits = mirror
    commit = commits["tiny-hub"]
    proxy.add(Fault("/model.safetensors", times=1, stall_after=4096, delay=60, methods=("GET",)))
    hf_home = tmp_path / "hf"
    pins = model_pins(tmp_path, commit)
    env = env_for(proxy.endpoint, hf_home, timeout_s=60)
    process = subprocess.Popen(
        [sys.executable, HUB_SERVER, "prefetch", str(pins)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not any(w.startswith("stalled") for _, _, w in proxy.seen):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.2)
        time.sleep(1)  # the first bytes reach the partial file
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert not (snapshot(hf_home, commit) / "model.safetensors").exists()
    assert_cache_holds_no_partial_file(hf_home, mirrors / "models" / "org" / "tiny-hub")

    proxy.clear()
    code, _fetched, _seconds, stderr = run_hub("prefetch", pins, env_for(proxy.endpoint, hf_home))
    assert code == 0, stderr[-3000:]
    weights = snapshot(hf_home, commit) / "model.safetensors"
    assert sha256(weights) == sha256(mirrors / "models" / "org" / "tiny-hub" / "model.safetensors")


# --- the rule's console ----------------------------------------------------------------------------------------------


def test_study_preflight_with_an_unresolvable_endpoint_stops_in_seconds_without_traceback(tmp_path):
    """`HF_ENDPOINT=http://no-such-host.invalid snakemake --configfile config/maple.yaml --cores 1 preflight`: a
    non-zero exit in seconds, the console naming the endpoint and the fix in a few lines, no traceback (the log holds
    it)."""
    workdir = tmp_path / "work"
    with pytest.MonkeyPatch.context() as mp:
        for name in OFFLINE_VARIABLES:
            mp.delenv(name, raising=False)
        mp.setenv("HF_ENDPOINT", UNRESOLVABLE)
        mp.setenv("HF_HOME", str(tmp_path / "hf"))
        started = time.monotonic()
        result = run_snakemake(
            workdir, "--cores", "1", "preflight", config=REPO / "config" / "maple.yaml", check=False, timeout=300
        )
        seconds = time.monotonic() - started
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in console, console[-4000:]
    ours = [line.strip() for line in console.splitlines() if UNRESOLVABLE in line]
    assert 1 <= len(ours) <= 3, console[-4000:]
    assert "the host name does not resolve" in ours[0] and "check the network (DNS) and HF_ENDPOINT" in ours[0]
    assert "not checked or pinned" in console  # the study's other repositories: one line
    assert not (workdir / "results" / "preflight" / "pins.json").exists()
    assert seconds < 120, seconds


@pytest.mark.slow
def test_study_prefetch_cut_then_run_again_and_the_offline_jobs_read_the_cache(proxy, mirror, tmp_path):
    """`snakemake preflight prefetch` through a hub that resets every download of the weights: prefetch stops with one
    console line (no traceback) and writes no prefetched.json. Run again with the hub healthy: it completes at the
    pinned commits; then, the hub gone, the study's offline job count_tokens reads the tokenizer and the task's data
    from the cache."""
    commits = mirror[1]
    config = study_config()
    config["hub"].update({"retry_s": 2, "timeout_s": 5})
    workdir = tmp_path / "work"
    config_file = write_config(workdir, config)
    prefetched = workdir / "results" / "preflight" / "prefetched.json"
    proxy.add(Fault("/model.safetensors", times=MANY, reset_after=1000, methods=("GET",)))
    with pytest.MonkeyPatch.context() as mp:
        for name in OFFLINE_VARIABLES:
            mp.delenv(name, raising=False)
        mp.setenv("HF_ENDPOINT", proxy.endpoint)
        mp.setenv("HF_HOME", str(tmp_path / "hf"))
        cut = run_snakemake(workdir, "--cores", "1", "preflight", "prefetch", config=config_file, check=False)
        console = cut.stdout + cut.stderr
        assert cut.returncode != 0 and "Traceback" not in console, console[-4000:]
        [line] = [line for line in console.splitlines() if line.startswith("[maple] prefetch model 'org/tiny-hub'")]
        assert f"({commits['tiny-hub'][:12]}): the hub at {proxy.endpoint} (HF_ENDPOINT)" in line
        assert "the connection was cut during the transfer" in line and "(log: logs/prefetch/prefetch.log)" in line
        assert "Traceback" in (workdir / "logs" / "prefetch" / "prefetch.log").read_text()  # the log holds it
        assert not prefetched.exists()

        proxy.clear()
        run_snakemake(workdir, "--cores", "1", "preflight", "prefetch", config=config_file)
        snapshots = json.loads(prefetched.read_text())["snapshots"]
        assert snapshots["model:org/tiny-hub@main"]["commit"] == commits["tiny-hub"]
        proxy.stop()
        run_snakemake(workdir, "--cores", "1", "count_tokens", config=config_file)
    with open(workdir / "results" / "plan" / "tokens.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    counted = {(r["model"], r["task"], r["lang"]) for r in rows if r["sampled"] not in ("", "0", "False")}
    assert ("hub", "xsc", "sw") in counted, rows


# --- a job that reads the hub: the hub data backend (maple.data.hub_dataset), its data_files read as hf:// paths ------

LOAD = """
import json, sys
from maple.hub.transport import install
from maple.hub.access import HubAccessError
from maple.data.hub_dataset import load_subset

install()  # as maple.runtime.jobs.logged_to does in a job that reads the hub
try:
    data = load_subset("org/plain", None, "train", sys.argv[1], False, data_files="data/{split}.jsonl")
    print(json.dumps({"rows": data.num_rows}))
except HubAccessError as error:
    print(json.dumps({"error": str(error)}))
"""


def load_plain(env: dict, commit: str) -> dict:
    result = subprocess.run([sys.executable, "-c", LOAD, commit], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_data_backend_waits_out_a_rate_limit(proxy, mirror, tmp_path):
    proxy.add(Fault("org/plain", times=2, status=429, retry_after=1))
    assert load_plain(env_for(proxy.endpoint, tmp_path / "hf"), mirror[1]["plain"]) == {"rows": 3}
    assert [w for _, _, w in proxy.seen].count("status 429") == 2


def test_data_backend_on_a_failing_hub_is_one_line(proxy, mirror, tmp_path):
    proxy.add(Fault("org/plain", times=MANY, status=503))
    answer = load_plain(env_for(proxy.endpoint, tmp_path / "hf", retry_s=2), mirror[1]["plain"])
    line = answer["error"]
    assert line.startswith("cannot load dataset hf://datasets/org/plain@") and "not in the local HF cache" in line
    assert f"the hub at {proxy.endpoint} (HF_ENDPOINT): it answers HTTP 503" in line and "\n" not in line
    assert "it answers HTTP 503 (server error)" in line and "wait and run again, or raise hub.retry_s" in line
    assert not (tmp_path / "hf" / "hub" / "datasets--org--plain" / "snapshots").exists() or not any(
        (tmp_path / "hf" / "hub" / "datasets--org--plain" / "snapshots").rglob("*.jsonl")
    )
