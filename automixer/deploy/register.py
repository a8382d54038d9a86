"""Registering deployments: :func:`deploy` registers the deployments of ``deployments/prefect.yaml``
with Prefect's own ``prefect deploy`` (the documented path; it loads each entrypoint for its parameter
schema).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from automixer.deploy.api import DeploymentError, _api_url, _client, _full_name, _resolve, _subprocess_env


def read_prefect_yaml(prefect_yaml: Path) -> dict[str, Any]:
    """The parsed project file; errors name the file."""
    if not prefect_yaml.is_file():
        raise DeploymentError(
            f"Prefect project file {str(prefect_yaml)!r} does not exist",
            fix="pass the path of deployments/prefect.yaml",
        )
    try:
        data = yaml.safe_load(prefect_yaml.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DeploymentError(f"{prefect_yaml} is not valid YAML: {exc}", fix="fix the YAML syntax") from None
    if not isinstance(data, dict) or not isinstance(data.get("deployments"), list):
        raise DeploymentError(
            f"{prefect_yaml} has no `deployments:` list", expected="a Prefect 3 project file"
        )
    return data


def _project_root(prefect_yaml: Path, deployments: list[dict[str, Any]]) -> Path:
    """The folder the entrypoints are relative to: the nearest ancestor holding an entrypoint file."""
    files = [str(d.get("entrypoint", "")).split(":")[0] for d in deployments if d.get("entrypoint")]
    for folder in [prefect_yaml.resolve().parent, *prefect_yaml.resolve().parents]:
        if any((folder / f).is_file() for f in files):
            return folder
    return Path.cwd()


def _prefect_command() -> list[str]:
    return [sys.executable, "-m", "prefect"]


def deployment_names(prefect_yaml: Path) -> list[str]:
    """The deployment names defined in a project file, in file order."""
    return [str(d.get("name")) for d in read_prefect_yaml(prefect_yaml)["deployments"]]


def deploy(
    prefect_yaml: Path,
    names: list[str] | None = None,
    *,
    root: Path | None = None,
    pool: str | None = None,
    timeout_s: float = 600,
) -> list[str]:
    """Register deployments of ``prefect_yaml`` on the API in ``PREFECT_API_URL``.

    Runs ``prefect deploy`` from the project root (the folder the entrypoints are relative to), so
    what is registered is exactly what the documented command registers. ``names=None`` deploys
    all of them. ``root`` defaults to the nearest folder above the file that holds an entrypoint.
    ``pool`` puts the named deployments on that work pool instead of the file's (``prefect deploy
    --pool``), e.g. score-shards on a process pool of GPU machines rather than Kubernetes.
    Returns the registered deployments as ``flow/deployment``, read back from the API.

    Raises:
        DeploymentError: the API URL is not set, a name is not in the file, an entrypoint file is
            missing, a work pool does not exist (the message gives the command that creates it),
            or ``prefect deploy`` failed (its output is in the message).
    """
    prefect_yaml = Path(prefect_yaml)
    data = read_prefect_yaml(prefect_yaml)
    defined = {str(d.get("name")): d for d in data["deployments"]}
    wanted = list(defined) if names is None else list(names)
    unknown = [n for n in wanted if n not in defined]
    if unknown:
        raise DeploymentError(
            f"{prefect_yaml} defines no deployment named {unknown}",
            expected=f"one of {sorted(defined)}",
        )
    root = Path(root) if root is not None else _project_root(prefect_yaml, list(defined.values()))
    missing_files = [
        f"{n}: {defined[n]['entrypoint']}"
        for n in wanted
        if not (root / str(defined[n].get("entrypoint", "")).split(":")[0]).is_file()
    ]
    if missing_files:
        raise DeploymentError(
            f"Entrypoint files missing under {root}: {missing_files}",
            fix="deploy only the others (pass their names), or add the flow module",
        )
    if pool is not None and names is None:
        raise DeploymentError(
            "A work pool override needs the deployments it applies to",
            fix="pass their names too (automixer deploy --name score-shards --pool <pool>)",
        )
    chosen = [defined[n] if pool is None else _on_pool(defined[n], pool) for n in wanted]
    _check_work_pools(prefect_yaml, chosen)

    with tempfile.TemporaryDirectory(prefix="automixer-deploy-") as tmp:
        project = prefect_yaml.resolve()
        if pool is not None:  # `prefect deploy --pool` moves one deployment only: deploy a copy that
            # names the pool in each chosen deployment, all in one `prefect deploy` (one start-up)
            moved = {str(d.get("name")): d for d in chosen}
            copy = {**data, "deployments": [moved.get(str(d.get("name")), d) for d in data["deployments"]]}
            project = Path(tmp) / "prefect.yaml"
            project.write_text(yaml.safe_dump(copy, sort_keys=False))
        cmd = [*_prefect_command(), "--no-prompt", "deploy", "--prefect-file", str(project)]
        if names is None:
            cmd.append("--all")
        else:
            for n in wanted:
                cmd += ["--name", n]
        env = {**_subprocess_env(), "COLUMNS": "1000"}  # one line per message: names are read back below
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s)
    output = (proc.stdout or "") + (proc.stderr or "")
    created = set(re.findall(r"Deployment '([^']+/[^']+)' successfully created", output))
    if proc.returncode != 0 or len(created) < len(wanted):
        raise DeploymentError(
            f"prefect deploy failed (exit {proc.returncode}, {len(created)} of {len(wanted)} registered): "
            + " ".join(output.split())[-2000:],
            fix="correct the deployment named in the output and deploy again",
        )
    with _client() as client:
        return sorted(_full_name(client, _resolve(client, f)) for f in created)


def _on_pool(deployment: dict[str, Any], pool: str) -> dict[str, Any]:
    """The deployment on work pool ``pool``, keeping its queue and job variables (as ``--pool``)."""
    return {**deployment, "work_pool": {**(deployment.get("work_pool") or {}), "name": pool}}


def _check_work_pools(prefect_yaml: Path, deployments: list[dict[str, Any]]) -> None:
    from prefect.exceptions import ObjectNotFound

    pools = sorted({str((d.get("work_pool") or {}).get("name")) for d in deployments})
    with _client() as client:
        missing = []
        for pool in pools:
            try:
                client.read_work_pool(pool)
            except ObjectNotFound:
                missing.append(pool)
    if missing:
        readme = prefect_yaml.parent / "README.md"
        raise DeploymentError(
            f"Work pool(s) {missing} do not exist on {_api_url()}",
            fix=f"create them first, as {readme} shows (e.g. prefect work-pool create automixer-cpu --type process)",
        )
