"""A stand-in for huggingface_hub.HfApi at the workflow's one hub seam (maple.hub.api), for tests only, and only for
what a hub server on loopback cannot serve: gated repositories, tokens and licences, a model_info `safetensors` block
(a parameter count without weights). Everything a real server can answer (existence, revisions and refs, files,
downloads, the HF cache, the jobs offline) is tested against one, olah in its local-mirror mode, through the real
huggingface_hub.HfApi (tests/hub_server.py, tests/test_hub_server.py); the differences found between this stand-in's
answers and that server's are listed in docs/hub-mirror.md.

MAPLE_HUB_API=<this file>:StandInHubApi, with MAPLE_HUB_STANDIN naming a JSON description of the hub:

    {"token": "<the token that may read gated repos>",
     "models":   {"org/name": {"revisions": {"main": "<sha>"}, "gated": false, "access": true, "parameters": 123,
                               "dirs": {"<sha>": "/dir/with/the/files"}}},
     "datasets": {"org/name": {"revisions": {"main": "<sha>", "refs/convert/parquet": "<sha>"},
                               "files": {"<sha>": ["cfg/test/0000.parquet", ...]}, "dirs": {"<sha>": "/dir"}}}}

It implements the HfApi methods preflight and prefetch call, with their keyword signatures, and fails as the hub
does, with huggingface_hub's own error classes. snapshot_download "downloads" by copying a commit's directory into
the real HF cache layout (<HF_HUB_CACHE>/models--org--name/snapshots/<sha>/, refs/<branch>), which the jobs then
read with the real transformers / datasets / huggingface_hub loaders, offline. No network is involved."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from pathlib import Path

SPEC_VARIABLE = "MAPLE_HUB_STANDIN"
ENDPOINT = "https://huggingface.co"


def _error(cls, message: str, url: str, status: int):
    import httpx2

    return cls(message, response=httpx2.Response(status, request=httpx2.Request("GET", url)))


class StandInHubApi:
    def __init__(self, spec: dict | None = None):
        if spec is None:
            spec = json.loads(Path(os.environ[SPEC_VARIABLE]).read_text(encoding="utf-8"))
        self.spec = spec
        self.calls: list[tuple] = []

    # --- lookups as the hub makes them --------------------------------------------------------------------------

    def _repo(self, repo_id: str, repo_type: str | None):
        from huggingface_hub.errors import RepositoryNotFoundError

        kind = "datasets" if repo_type == "dataset" else "models"
        repo = self.spec.get(kind, {}).get(repo_id)
        if repo is None:
            raise _error(
                RepositoryNotFoundError,
                f"401 Client Error. Repository Not Found for url: {ENDPOINT}/api/{kind}/{repo_id}.",
                f"{ENDPOINT}/api/{kind}/{repo_id}",
                401,
            )
        return repo

    def _commit(self, repo_id: str, repo: dict, revision: str | None, repo_type: str | None) -> str:
        from huggingface_hub.errors import RevisionNotFoundError

        revisions = repo.get("revisions", {})
        revision = revision or "main"
        if revision in revisions:
            return revisions[revision]
        if revision in revisions.values():
            return revision
        raise _error(
            RevisionNotFoundError,
            f"404 Client Error. Revision Not Found for url: {ENDPOINT}/api/{repo_type or 'model'}s/{repo_id}/revision/"
            f"{revision}.",
            f"{ENDPOINT}/api/{repo_type or 'model'}s/{repo_id}/revision/{revision}",
            404,
        )

    def _check_access(self, repo_id: str, repo: dict, token) -> None:
        from huggingface_hub.errors import GatedRepoError

        if repo.get("gated") and (not token or token != self.spec.get("token") or not repo.get("access", False)):
            raise _error(
                GatedRepoError,
                f"403 Client Error. Cannot access gated repo for url {ENDPOINT}/api/models/{repo_id}/auth-check. "
                f"Access to model {repo_id} is restricted and you are not in the authorized list.",
                f"{ENDPOINT}/api/models/{repo_id}/auth-check",
                403 if token else 401,
            )

    def _files(self, repo: dict, commit: str) -> list[str]:
        if commit in repo.get("files", {}):
            return list(repo["files"][commit])
        root = Path(repo.get("dirs", {}).get(commit, ""))
        if not root.is_dir():
            return []
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    # --- the HfApi methods used -----------------------------------------------------------------------------------

    def model_info(self, repo_id: str, *, revision: str | None = None, token=None, **kwargs):
        from huggingface_hub.hf_api import ModelInfo

        self.calls.append(("model_info", repo_id, revision))
        repo = self._repo(repo_id, "model")
        commit = self._commit(repo_id, repo, revision, "model")
        n = repo.get("parameters")
        return ModelInfo(
            id=repo_id,
            sha=commit,
            gated=repo.get("gated", False),
            private=False,
            safetensors={"parameters": {"F32": n}, "total": n} if n else None,
        )

    def dataset_info(self, repo_id: str, *, revision: str | None = None, token=None, **kwargs):
        from huggingface_hub.hf_api import DatasetInfo

        self.calls.append(("dataset_info", repo_id, revision))
        repo = self._repo(repo_id, "dataset")
        self._check_access(repo_id, repo, token)
        commit = self._commit(repo_id, repo, revision, "dataset")
        return DatasetInfo(id=repo_id, sha=commit, private=False, gated=repo.get("gated", False))

    def list_repo_refs(self, repo_id: str, *, repo_type: str | None = None, include_pull_requests=False, token=None):
        from huggingface_hub.hf_api import GitRefInfo, GitRefs

        self.calls.append(("list_repo_refs", repo_id, repo_type))
        groups = {"refs/heads/": [], "refs/tags/": [], "refs/convert/": []}
        for name, commit in self._repo(repo_id, repo_type).get("revisions", {}).items():
            ref = name if name.startswith("refs/") else f"refs/heads/{name}"
            for prefix, group in groups.items():
                if ref.startswith(prefix):
                    group.append(GitRefInfo(name=ref.removeprefix(prefix), ref=ref, target_commit=commit))
        return GitRefs(branches=groups["refs/heads/"], converts=groups["refs/convert/"], tags=groups["refs/tags/"])

    def list_repo_files(self, repo_id: str, *, revision: str | None = None, repo_type: str | None = None, token=None):
        self.calls.append(("list_repo_files", repo_id, revision))
        repo = self._repo(repo_id, repo_type)
        self._check_access(repo_id, repo, token)
        return self._files(repo, self._commit(repo_id, repo, revision, repo_type))

    def auth_check(self, repo_id: str, *, repo_type: str | None = None, token=None, write: bool = False) -> None:
        self.calls.append(("auth_check", repo_id, repo_type))
        self._check_access(repo_id, self._repo(repo_id, repo_type), token)

    def snapshot_download(
        self,
        repo_id: str,
        *,
        repo_type: str | None = None,
        revision: str | None = None,
        cache_dir=None,
        allow_patterns=None,
        token=None,
        **kwargs,
    ) -> str:
        from huggingface_hub import constants
        from huggingface_hub.file_download import repo_folder_name

        self.calls.append(("snapshot_download", repo_id, revision))
        repo = self._repo(repo_id, repo_type)
        self._check_access(repo_id, repo, token)
        commit = self._commit(repo_id, repo, revision, repo_type)
        storage = Path(cache_dir or constants.HF_HUB_CACHE) / repo_folder_name(
            repo_id=repo_id, repo_type=repo_type or "model"
        )
        snapshot = storage / "snapshots" / commit
        source = Path(repo.get("dirs", {}).get(commit, ""))
        patterns = [allow_patterns] if isinstance(allow_patterns, str) else allow_patterns
        for name in self._files(repo, commit):
            if patterns is None or any(fnmatch.fnmatch(name, p) for p in patterns):
                (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / name, snapshot / name)
        snapshot.mkdir(parents=True, exist_ok=True)
        if revision and revision != commit:
            (storage / "refs" / revision).parent.mkdir(parents=True, exist_ok=True)
            (storage / "refs" / revision).write_text(commit)
        return str(snapshot)
