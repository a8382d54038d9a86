"""Checkpoints on the Hugging Face hub: a model repo ``hf://org/name`` whose branches are
checkpoints (Pythia's ``step1000``), optionally restricted with ``revision=``."""

from __future__ import annotations

import re

from automixer_core.checkpoints.refs import CheckpointRef, DiscoveryResult, _check_unique_steps, parse_step
from automixer_core.errors import CheckpointError

HUB_SCHEME = "hf://"
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def parse_hub_uri(uri: str) -> tuple[str, str | None]:
    """``hf://org/name[@revision]`` -> (``org/name``, revision or None)."""
    rest = uri[len(HUB_SCHEME) :].strip("/")
    if rest.startswith("models/"):
        rest = rest[len("models/") :]
    revision = None
    if "@" in rest:
        rest, revision = rest.split("@", 1)
    if rest.count("/") != 1 or not all(rest.split("/")):
        raise CheckpointError(
            f"{uri!r} is not a hub model URI",
            expected="hf://<org>/<name> or hf://<org>/<name>@<revision>",
            fix="write the repository id after hf://, e.g. hf://EleutherAI/pythia-70m",
        )
    return rest, revision or None


def hub_checkpoints(
    repo_id: str, refs: list[tuple[str, str]], revision: str | list[str] | None = None
) -> DiscoveryResult:
    """Checkpoint refs for a hub repo, given its refs as ``(name, commit)`` (no network).

    Without ``revision`` every ref whose name encodes a step is a checkpoint (others such as
    ``main`` are ignored), or, when none does, ``main`` alone is (step 0). With ``revision`` exactly
    those revisions are, in the given set; a name that is not a ref but a 40-digit commit is taken
    as is.

    Raises:
        CheckpointError: a requested revision is not among the refs; no ref at all.
    """
    commits = dict(refs)
    result = DiscoveryResult()
    if revision is None:
        names = [n for n in commits if parse_step(n) is not None]
        if not names:
            names = ["main"] if "main" in commits else []
    else:
        names = [revision] if isinstance(revision, str) else list(revision)
        unknown = [n for n in names if n not in commits and not _SHA_RE.match(n)]
        if unknown:
            stepped = sorted(
                (n for n in commits if parse_step(n) is not None), key=lambda n: parse_step(n) or 0
            )
            shown = ", ".join(stepped[:3] + (["...", *stepped[-2:]] if len(stepped) > 5 else stepped[3:]))
            raise CheckpointError(
                f"Hub repo {repo_id!r} has no revision(s) {unknown}",
                expected=f"one of its refs ({shown or 'none with a step in the name'})",
                fix="check the revision names (e.g. step1000) on the repo's branches page",
            )
    for name in names:
        commit = commits.get(name, name)
        step = parse_step(name)
        result.checkpoints.append(
            CheckpointRef(
                name=name,
                uri=f"{HUB_SCHEME}{repo_id}@{name}",
                step=step if step is not None else 0,
                fingerprint=commit[:16],
                revision=name,
            )
        )
    if not result.checkpoints:
        raise CheckpointError(
            f"Hub repo {repo_id!r} has no revision that names a step and no main branch",
            expected="branches such as step1000, step2000",
            fix="pass revision=[...] with the revisions to use",
        )
    # revisions that name no step all get step 0 on purpose; those that do must not collide
    _check_unique_steps([c for c in result.checkpoints if parse_step(c.name) is not None], f"hf://{repo_id}")
    result.checkpoints.sort(key=lambda c: (c.step, c.name))
    return result


def _hub_error(what: str, exc: Exception) -> CheckpointError:
    return CheckpointError(
        f"Cannot {what}: {type(exc).__name__}: {exc}",
        fix="check the repo id and revision, the network, HF_TOKEN for private repos, "
        "and that HF_HUB_OFFLINE is not set (offline, only revisions already in the local cache load)",
    )


def _discover_hub(uri: str, revision: str | list[str] | None) -> DiscoveryResult:
    repo_id, uri_rev = parse_hub_uri(uri)
    if uri_rev is not None:
        if revision is not None:
            raise CheckpointError(
                f"{uri!r} names a revision and revision={revision!r} was passed too",
                fix="give the revision in one place only",
            )
        revision = uri_rev
    try:
        from huggingface_hub import HfApi

        git_refs = HfApi().list_repo_refs(repo_id)
    except Exception as exc:  # offline mode, HTTP and connection errors
        raise _hub_error(f"list the revisions of hub repo {repo_id!r}", exc) from exc
    refs = [(b.name, b.target_commit) for b in git_refs.branches]
    refs += [(t.name, t.target_commit) for t in git_refs.tags]
    return hub_checkpoints(repo_id, refs, revision)
