"""A real Hugging Face hub server on loopback for the tests: olah (PyPI, pinned in envs/olah.txt, installed into
.venv-olah by envs/setup_olah_venv.sh) in its local-mirror mode, serving git repositories that the tests build, as
the hub serves them (model_info, list_repo_refs, tree listings, resolve downloads). The workflow reaches it through
the real huggingface_hub.HfApi with HF_ENDPOINT; no stand-in (tests/hub_standin.py) is involved.

olah maps {mirrors-path}/{models|datasets}/{org}/{name} (a git work tree) to the repository org/name; refs/heads/*,
refs/tags/* and refs/convert/* are its branches, tags and conversions. It runs with `offline = true`: it never
tries huggingface.co, and serves only the mirrors.

huggingface_hub reads HF_HUB_OFFLINE once, at import, and tests/conftest.py sets it for every test: whatever talks to
this server runs in a subprocess with the environment `hub_env` returns (a Snakemake run, or `python hub_server.py
preflight|prefetch ...`, the entry points below)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OLAH_VARIABLE = "MAPLE_OLAH"  # the olah-cli to run; else .venv-olah/bin/olah-cli, else olah-cli on PATH
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
GIT = [
    "git",
    "-c",
    "user.name=maple-tests",
    "-c",
    "user.email=maple-tests@localhost",
    "-c",
    "init.defaultBranch=main",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "tag.gpgsign=false",
]


def olah_cli() -> str | None:
    for candidate in (os.environ.get(OLAH_VARIABLE), str(REPO / ".venv-olah" / "bin" / "olah-cli")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("olah-cli")


# --- Git repositories as the hub holds them -------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True, text=True, timeout=60).stdout


def commit_files(
    repo: Path, files: dict[str, bytes | str | Path], message: str, *, orphan: str | None = None, keep: bool = False
) -> str:
    """Commit exactly `files` (path in the repo -> content, or a file to copy) on the current branch, or on a new
    branch with no history (orphan); keep: `files` change the work tree rather than replace it. Returns the commit."""
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        git(repo, "init", "-q", ".")
    if orphan:
        git(repo, "checkout", "-q", "--orphan", orphan)
    if not keep:
        git(repo, "rm", "-rqf", "--ignore-unmatch", ".")
    for name, content in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content.encode() if isinstance(content, str) else content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def move_to_ref(repo: Path, ref: str, branch: str = "main") -> str:
    """The current (orphan) branch becomes `ref` (e.g. refs/convert/parquet); back on `branch`."""
    commit = git(repo, "rev-parse", "HEAD").strip()
    current = git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip()
    git(repo, "update-ref", ref, commit)
    git(repo, "checkout", "-q", "-f", branch)
    git(repo, "branch", "-q", "-D", current)
    return commit


def directory_files(directory: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(directory)): p
        for p in sorted(directory.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(directory).parts
    }


def parquet_bytes(rows: list[dict]) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def story_rows(n: int) -> list[dict]:
    """Rows of juletxara/xstory_cloze's parquet conversion (the columns lm-eval's xstorycloze tasks read)."""
    return [
        {
            "story_id": f"s{i}",
            "input_sentence_1": f"Juma aliamka mapema siku ya {i}.",
            "input_sentence_2": "Alienda sokoni.",
            "input_sentence_3": "Alinunua matunda.",
            "input_sentence_4": "Alirudi nyumbani.",
            "sentence_quiz1": "Alikula matunda.",
            "sentence_quiz2": "Aliruka angani.",
            "answer_right_ending": 1,
        }
        for i in range(n)
    ]


def build_mirror(root: Path) -> dict:
    """The repositories the tests read, under root/mirrors; returns their commits:

    models/org/tiny-hub    a tiny Llama (config.json, model.safetensors, tokenizer); tag v1 at an older commit
    models/org/tiny-bin    config.json and pytorch_model.bin only (no safetensors: the count comes from the config)
    models/org/bare        a README only (no parameter count from anywhere)
    datasets/juletxara/xstory_cloze   main: a loading script and a README whose card sizes sw's eval as the table
                           does (1511); refs/convert/parquet: sw/{train,eval} (no card, as the hub's converter keeps)
    datasets/org/plain     plain data files on main (data/train.jsonl), no conversion
    datasets/cambridgeltl/xcopa   main: a README whose card (YAML front matter) gives each config's split sizes,
                           sw's test as workflow/resources/task_sizes.csv has it (500), et's not (499)
    org/missing is no repository; org/tiny-hub has no branch "no-such-branch"."""
    from tiny_models import build_tiny_llama

    mirrors = root / "mirrors"
    built = root / "tiny-llama"
    if not built.exists():
        build_tiny_llama(built, seed=0)
    model = mirrors / "models" / "org" / "tiny-hub"
    commits = {"tiny-hub@v1": commit_files(model, {"README.md": "# tiny\n"}, "first")}
    git(model, "tag", "v1")
    commits["tiny-hub"] = commit_files(model, {"README.md": "# tiny\n", **directory_files(built)}, "the model")
    config = json.loads((built / "config.json").read_text())
    commits["tiny-bin"] = commit_files(
        mirrors / "models" / "org" / "tiny-bin",
        {"config.json": json.dumps(config), "pytorch_model.bin": b"\0" * 64, "tokenizer.json": "{}"},
        "bin only",
    )
    commits["bare"] = commit_files(mirrors / "models" / "org" / "bare", {"README.md": "# bare\n"}, "bare")
    stories = mirrors / "datasets" / "juletxara" / "xstory_cloze"
    commits["xstory_cloze"] = commit_files(
        stories, {"README.md": XSTORY_CLOZE_CARD, "xstory_cloze.py": "import datasets\n"}, "loading script"
    )
    commit_files(
        stories,
        {"sw/train/0000.parquet": parquet_bytes(story_rows(4)), "sw/eval/0000.parquet": parquet_bytes(story_rows(6))},
        "parquet conversion",
        orphan="convert",
    )
    commits["xstory_cloze@parquet"] = move_to_ref(stories, "refs/convert/parquet")
    rows = "".join(json.dumps({"instruction": f"Say {i}.", "input": "", "output": f"{i}."}) + "\n" for i in range(3))
    commits["plain"] = commit_files(mirrors / "datasets" / "org" / "plain", {"data/train.jsonl": rows}, "plain")
    commits["xcopa"] = commit_files(mirrors / "datasets" / "cambridgeltl" / "xcopa", {"README.md": XCOPA_CARD}, "card")
    return commits


# The README of a dataset repository as the hub holds it: the card's dataset_info gives each config's splits.
XCOPA_CARD = """---
language:
- et
- sw
dataset_info:
- config_name: et
  splits:
  - name: validation
    num_examples: 100
  - name: test
    num_examples: 499
- config_name: sw
  splits:
  - name: validation
    num_examples: 100
  - name: test
    num_examples: 500
---
# XCOPA
"""


XSTORY_CLOZE_CARD = """---
dataset_info:
- config_name: sw
  splits:
  - name: train
    num_examples: 360
  - name: eval
    num_examples: 1511
---
# xstory_cloze
"""


# --- The server -------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OlahServer:
    """olah-cli serving `mirrors` on a free loopback port, started in __init__ (bounded wait), ended by stop()."""

    def __init__(self, mirrors: Path, workdir: Path, start_timeout: float = 90):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        config = self.workdir / "olah.toml"
        config.write_text(
            "[basic]\n"
            'host = "127.0.0.1"\n'
            f"port = {self.port}\n"
            f"repos-path = {json.dumps(str(self.workdir / 'cache'))}\n"
            f"mirrors-path = [{json.dumps(str(mirrors))}]\n"
            "[accessibility]\n"
            "offline = true\n",
            encoding="utf-8",
        )
        self.output = self.workdir / "server.log"
        cli = olah_cli()
        if cli is None:
            raise FileNotFoundError("olah-cli not found: bash envs/setup_olah_venv.sh (or set MAPLE_OLAH)")
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                [cli, "-c", str(config), "--log-path", str(self.workdir / "logs")],
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + start_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"olah exited ({self.process.returncode}):\n{self.output.read_text()[-3000:]}")
            try:  # any HTTP answer means it serves (olah's index page "/" fails with starlette 1.x)
                urllib.request.urlopen(f"{self.endpoint}/api/models/maple-probe/none/refs", timeout=2).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"olah did not answer within {start_timeout:g} s:\n{self.output.read_text()[-3000:]}"
                )
            time.sleep(0.3)

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request the server has logged so far (uvicorn's access log)."""
        text = self.output.read_text(encoding="utf-8", errors="replace")
        return [
            (m.group(1), m.group(2), int(m.group(3)))
            for m in re.finditer(r'"(GET|HEAD|POST) (\S+) HTTP/[\d.]+" (\d{3})', text)
        ]

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)


def hub_env(endpoint: str, hf_home: Path) -> dict:
    """The environment of a process that talks to the server: HF_ENDPOINT at it, its own HF_HOME, the hub online."""
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARIABLES and k != "MAPLE_HUB_API"}
    env.update({"HF_ENDPOINT": endpoint, "HF_HOME": str(hf_home), "HF_HUB_DISABLE_TELEMETRY": "1"})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "workflow" / "scripts"), str(REPO / "tests")])
    return env


def run_here(command: str, *args: str, env: dict, timeout: float = 300) -> dict:
    """`python hub_server.py <command> <args>` with env; its JSON answer."""
    result = subprocess.run(
        [sys.executable, __file__, command, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{command} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- Entry points of the subprocesses (the hub online, through the real HfApi) ------------------------------------


def _preflight(config_file: str) -> dict:
    import yaml
    from maple.config.validation import checked_study, lm_eval_tasks_dir
    from maple.hub.preflight import preflight_plan, run_preflight
    from maple.hub.task_files import SHIPPED_TASKS_DIR

    config = yaml.safe_load(Path(config_file).read_text(encoding="utf-8"))
    plan = preflight_plan(checked_study(config)[1], (config.get("preflight") or {}).get("gpu_memory_gib"))
    outcome = run_preflight(plan, shipped_dir=SHIPPED_TASKS_DIR, lm_eval_dir=lm_eval_tasks_dir())
    return {"pins": outcome.pins, "report": outcome.report, "problems": outcome.problems}


def _prefetch(pins_file: str) -> dict:
    from maple.hub.api import hub_api, hub_token
    from maple.hub.prefetch import prefetch

    pins = json.loads(Path(pins_file).read_text(encoding="utf-8"))
    return prefetch(pins, hub_api(), hub_token(), log=lambda line: print(line, file=sys.stderr))


if __name__ == "__main__":
    from maple.hub.cache import HubAccessError

    command, argument = sys.argv[1], sys.argv[2]
    try:
        answer = {"preflight": _preflight, "prefetch": _prefetch}[command](argument)
    except HubAccessError as error:  # the one line a rule's console shows (maple.runtime.jobs.logged_to)
        print(json.dumps({"error": str(error)}))
        sys.exit(1)
    print(json.dumps(answer))
