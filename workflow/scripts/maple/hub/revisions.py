"""A hub repository as preflight asks about it through the seam (maple.hub.api): its configured revision resolved to
one commit, the repository's info at that commit, and whether the token may read it.

The revision (a branch, a tag, refs/convert/parquet, refs/pr/N) is looked up in `list_repo_refs`; only a full commit
hash skips the look-up, and only where the server lists no refs is the revision handed to the info call as it is. A
revision with slashes never goes into a URL path: servers whose routes do not expect one there (site mirrors, proxies
behind HF_ENDPOINT) answer "not found" for it. Every later call uses the commit.

Access: `model_info` / `dataset_info` say whether a repository is gated; `auth_check` is asked only for a gated one
(or one whose info says nothing about gating). A server without `auth_check` yields a warning naming the endpoint,
not a problem: the repository exists, only the token's access to it could not be verified there."""

from __future__ import annotations

import re
from dataclasses import dataclass

from maple.hub.access import is_commit
from maple.hub.errors import REMEDIES, error_types, hub_fault, what_failed
from maple.hub.pins import HubRepo
from maple.hub.task_sources import PARQUET_REVISION

DEFAULT_ENDPOINT = "https://huggingface.co"


class NoSuchRevision(LookupError):
    """The server listed the repository's refs and the revision is none of them (nor a commit)."""

    def __init__(self, revision: str, refs):
        self.revision = revision
        self.available = available_refs(refs)
        super().__init__(f"no revision {revision!r} (refs: {self.available})")


@dataclass(frozen=True)
class Resolved:
    commit: str
    info: object  # huggingface_hub ModelInfo / DatasetInfo at the commit
    refs: object | None  # huggingface_hub GitRefs, None where the server lists none


def repo_type(repo: HubRepo) -> str:
    return "dataset" if repo.kind == "dataset" else "model"


def endpoint(api) -> str:
    """The hub endpoint the API talks to (HF_ENDPOINT, else huggingface.co)."""
    from huggingface_hub import constants

    return str(getattr(api, "endpoint", None) or constants.ENDPOINT).rstrip("/")


def hub_name(api) -> str:
    """'the hub', or 'the hub at <endpoint>' where HF_ENDPOINT names another server (a site mirror, a proxy)."""
    where = endpoint(api)
    return "the hub" if where == DEFAULT_ENDPOINT else f"the hub at {where}"


def available_refs(refs) -> str:
    if refs is None:
        return "not listed"
    parts = []
    for label, group in (("branches", refs.branches), ("tags", refs.tags), ("converts", refs.converts)):
        if group:
            parts.append(f"{label} " + ", ".join(r.ref if label == "converts" else r.name for r in group))
    return "; ".join(parts) or "none"


def ref_commit(refs, revision: str) -> str | None:
    """The commit a branch, tag, conversion or pull-request ref points at (by full ref, or a branch or tag by name)."""
    named = ((refs.branches, True), (refs.tags, True), (refs.converts, False), (refs.pull_requests or [], False))
    for group, by_name in named:
        for ref in group:
            if revision == ref.ref or (by_name and revision == ref.name):
                return ref.target_commit
    return None


def list_refs(api, repo: HubRepo, token: str | None):
    """The repository's refs, or None where this server (or client) does not list them. A repository that does not
    exist, or is gated or private, raises as the hub says so."""
    from huggingface_hub import errors

    try:
        return api.list_repo_refs(
            repo.repo_id,
            repo_type=repo_type(repo),
            include_pull_requests=repo.revision.startswith("refs/pr/"),
            token=token or False,
        )
    except errors.RepositoryNotFoundError:
        raise
    except (AttributeError, errors.HfHubHTTPError, OSError, ValueError) as error:
        fault = hub_fault(error)
        if fault is not None and fault.endpoint_wide and fault.kind != "server":
            raise  # the endpoint failed (a 5xx may be a route this server lacks: the info call decides)
        return None  # no refs from this server: the info call at the revision decides


def resolve(api, repo: HubRepo, token: str | None) -> Resolved:
    """The repository's configured revision resolved to a commit, with its info at that commit. Raises the hub's own
    errors (a repository that does not exist, is gated ...) or NoSuchRevision."""
    info_call = api.dataset_info if repo.kind == "dataset" else api.model_info
    refs, commit = None, repo.revision if is_commit(repo.revision) else None
    if commit is None:
        refs = list_refs(api, repo, token)
        if refs is not None:
            commit = ref_commit(refs, repo.revision)
            if commit is None and not re.fullmatch(r"[0-9a-f]{7,40}", repo.revision):
                raise NoSuchRevision(repo.revision, refs)  # an abbreviated commit is left to the info call
    info = info_call(repo.repo_id, revision=commit or repo.revision, token=token or False)
    return Resolved(commit or info.sha, info, refs)


def access_warning(api, repo: HubRepo, info, what: str, token: str | None) -> str | None:
    """Asks auth_check for a gated repository (or one whose info does not say); a GatedRepoError passes through. A
    server that cannot answer auth_check yields the warning returned, naming the endpoint."""
    from huggingface_hub import errors

    gated = getattr(info, "gated", None)
    if gated is False or gated == "False":
        return None
    try:
        api.auth_check(repo.repo_id, repo_type=repo_type(repo), token=token or False)
    except errors.GatedRepoError:
        raise
    except (AttributeError, errors.HfHubHTTPError, OSError, ValueError) as error:
        fault = hub_fault(error)
        if fault is not None and fault.endpoint_wide and fault.kind != "server":
            raise
        status = getattr(getattr(error, "response", None), "status_code", None)
        said = f"gated ({gated})" if gated else "its info does not say whether it is gated"
        return (
            f"warn {what}: {repo.kind} {repo.repo_id!r}: {said}, and {endpoint(api)} does not answer auth_check "
            f"({f'HTTP {status}' if status else type(error).__name__}): whether the token may read it is not verified "
            f"here; the download (prefetch or the job) will tell"
        )
    return None


def _errors():
    from huggingface_hub import errors

    return errors


def access_problem(error, what: str, repo: HubRepo, token: str | None, hub: str = "the hub") -> str:
    """One line for a hub error about repo (a model or dataset used by `what`); hub: maple.hub.revisions.hub_name."""
    errors = _errors()
    name = f"{repo.kind} {repo.repo_id!r}"
    if isinstance(error, NoSuchRevision):
        return f"{what}: {name} has no revision {repo.revision!r} on {hub} ({error.available})"
    if isinstance(error, errors.GatedRepoError):
        if not token:
            return (
                f"{what}: {name} is gated and no hub token is set (HF_TOKEN missing in the environment): export "
                f"HF_TOKEN of an account that accepted its licence at https://huggingface.co/{repo.repo_id}"
            )
        return (
            f"{what}: {name} is gated and the licence is not accepted for the account of HF_TOKEN: accept it at "
            f"https://huggingface.co/{'datasets/' if repo.kind == 'dataset' else ''}{repo.repo_id}"
        )
    if isinstance(error, errors.RevisionNotFoundError):
        return f"{what}: {name} has no revision {repo.revision!r} on {hub}"
    if isinstance(error, errors.RepositoryNotFoundError):
        hint = "no hub token is set (HF_TOKEN)" if not token else "the account of HF_TOKEN cannot see it"
        return f"{what}: {name} does not exist on {hub} (or it is private and {hint})"
    fault = hub_fault(error)
    if fault is not None and fault.endpoint_wide:
        return f"{what}: {name} at {repo.revision!r}: {endpoint_line(fault)}"
    if fault is not None and fault.kind == "gated":  # a 401/403 without the hub's gated-repository answer
        said = "refuses the token (HTTP 401)" if fault.status == 401 else f"refuses access (HTTP {fault.status})"
        hint = "export HF_TOKEN of an account that may read it" if not token else "check HF_TOKEN and the licence"
        return f"{what}: {name} at {repo.revision!r}: {hub} {said}: {hint}"
    return f"{what}: could not query {hub} about {name} at {repo.revision!r}: {first_line(error)}"


def endpoint_line(fault) -> str:
    """An endpoint-wide fault (maple.hub.errors): the endpoint, what failed, what to do."""
    from maple.hub.errors import endpoint_phrase

    return f"{endpoint_phrase()}: {what_failed(fault)}: {REMEDIES[fault.kind]}"


class EndpointFailed(Exception):
    """The hub failed as a whole (maple.hub.errors.HubFault.endpoint_wide): no further repository is asked about."""


def hub_problem(error, what: str, repo: HubRepo, token: str | None, problems: list[str], hub: str) -> None:
    """The problem line for a hub error about repo; raises EndpointFailed after it where the hub failed as a whole."""
    problems.append(access_problem(error, what, repo, token, hub))
    fault = hub_fault(error)
    if fault is not None and fault.endpoint_wide:
        raise EndpointFailed() from error


def until_the_hub_fails(checks, problems: list[str]):
    """(repo, check()) for each (repo, check) in turn, until one raises EndpointFailed (or a fault of the whole
    endpoint that no check turned into a line: then that line); then one problem line names the repositories not
    asked about."""
    for done, (repo, check) in enumerate(checks):
        try:
            result = check()
        except Exception as error:
            fault = hub_fault(error)
            if not isinstance(error, EndpointFailed) and (fault is None or not fault.endpoint_wide):
                raise
            if not isinstance(error, EndpointFailed):  # from a look-up that reports none of its own
                problems.append(f"{repo.kind} {repo.repo_id!r} at {repo.revision!r}: {endpoint_line(fault)}")
            left = sorted({r.repo_id for r, _ in checks[done + 1 :]} - {repo.repo_id})
            if left:
                shown = ", ".join(left[:6]) + (", ..." if len(left) > 6 else "")
                problems.append(
                    f"{len(left)} more hub repositories not checked or pinned, the hub having failed ({shown})"
                )
            return
        yield repo, result


def hub_failures():
    """What a hub query may raise: the hub's own errors, and its HTTP client's (unreachable, timed out ...)."""
    errors = _errors()
    transport = error_types("httpx", "TransportError") + error_types("httpx2", "TransportError")
    return (errors.HfHubHTTPError, errors.EntryNotFoundError, NoSuchRevision, OSError, ValueError, *transport)


def parquet_files(api, repo: HubRepo, refs, token: str | None) -> list[str]:
    """The files of the dataset's parquet conversion at the commit its ref points at ([]: none)."""
    conversion = HubRepo("dataset", repo.repo_id, PARQUET_REVISION)
    try:
        commit = ref_commit(refs, PARQUET_REVISION) if refs is not None else resolve(api, conversion, token).commit
        if commit is None:
            return []
        return list(api.list_repo_files(repo.repo_id, repo_type="dataset", revision=commit, token=token or False))
    except hub_failures():
        return []


def first_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return (text[:160] + "...") if len(text) > 160 else (text or type(error).__name__)
