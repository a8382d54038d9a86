"""The Prefect API behind the deployments: the client on ``PREFECT_API_URL``, the error it raises, and
the helpers every operation shares (resolving a deployment by name, request bodies, error details,
the environment a ``prefect`` subprocess needs).

There is no point in an ephemeral API here: a deployment only matters where workers poll for it.
"""

from __future__ import annotations

import os
from typing import Any

from automixer_core.errors import AutoMixerError


class DeploymentError(AutoMixerError):
    """A deployment cannot be registered, found or triggered."""


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise DeploymentError(
            "PREFECT_API_URL is not set",
            expected="the URL of the Prefect server (or Cloud workspace) that the workers poll",
            fix="export PREFECT_API_URL=http://<server>:4200/api (and PREFECT_API_KEY for Cloud)",
        )
    return str(url)


def _client() -> Any:
    from prefect.client.orchestration import get_client

    _api_url()
    return get_client(sync_client=True)


def _subprocess_env() -> dict[str, str]:
    """This process's environment plus the API settings that may only live in Prefect's settings."""
    from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL

    env = dict(os.environ)
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    key = PREFECT_API_KEY.value()
    if key:
        env["PREFECT_API_KEY"] = key.get_secret_value() if hasattr(key, "get_secret_value") else str(key)
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return env


def _resolve(client: Any, deployment: str) -> Any:
    """A deployment by ``flow/deployment`` or by its bare name when that is unambiguous."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.exceptions import ObjectNotFound

    if "/" in deployment:
        try:
            return client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise DeploymentError(
                f"No deployment {deployment!r} on {_api_url()}",
                fix="register it first (automixer deploy, or prefect deploy --all --prefect-file deployments/prefect.yaml)",
            ) from None
    found = client.read_deployments(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment]))
    )
    if not found:
        raise DeploymentError(
            f"No deployment named {deployment!r} on {_api_url()}",
            fix="register it first (automixer deploy, or prefect deploy --all --prefect-file deployments/prefect.yaml)",
        )
    if len(found) > 1:
        names = sorted(f"{client.read_flow(d.flow_id).name}/{d.name}" for d in found)
        raise DeploymentError(
            f"Deployment name {deployment!r} is ambiguous on {_api_url()}: {names}",
            fix="pass the full FLOW/DEPLOYMENT name",
        )
    return found[0]


def _full_name(client: Any, dep: Any) -> str:
    return f"{client.read_flow(dep.flow_id).name}/{dep.name}"


def _jsonable(parameters: dict[str, Any]) -> dict[str, Any]:
    from pydantic import BaseModel

    return {
        k: v.model_dump(mode="json", exclude_unset=True) if isinstance(v, BaseModel) else v
        for k, v in parameters.items()
    }


def _http_detail(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            detail = response.json().get("detail")
        except Exception:
            detail = getattr(response, "text", None)
        if detail:
            return str(detail)
    return str(exc)
