"""Running on a Prefect server: ``automixer deploy`` (register the deployments), ``automixer schema``
(a deployment's run form) and ``automixer trigger`` (start a run and wait for it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from automixer.cli import _fail, command, console, err_console


@command("deploy")
def deploy_cmd(
    name: Annotated[
        list[str] | None, typer.Option("--name", help="deployment(s) to register (default: all)")
    ] = None,
    prefect_file: Annotated[Path, typer.Option(help="the project file")] = Path("deployments/prefect.yaml"),
    pool: Annotated[
        str | None,
        typer.Option(
            help="put the --name deployments on this work pool (e.g. a process pool of GPU machines)"
        ),
    ] = None,
) -> None:
    """Register the deployments (remix, score-shards, proxy-train) with the server in PREFECT_API_URL."""
    from automixer.deploy import deploy

    for full in deploy(prefect_file, name or None, pool=pool):
        console.print(f"[green]registered[/] {full}")


@command("schema")
def schema_cmd(
    deployment: Annotated[str, typer.Argument(help="deployment name (remix, or flow/deployment)")] = "remix",
    prefect_file: Annotated[Path, typer.Option(help="the project file")] = Path("deployments/prefect.yaml"),
    server: Annotated[
        bool, typer.Option(help="read the registered deployment from PREFECT_API_URL, not the code")
    ] = False,
) -> None:
    """The deployment's run form as the UI renders it: every field, its type, default and description."""
    from automixer.deploy import (
        DeploymentError,
        form_fields,
        local_parameter_schema,
        parameter_schema,
        read_prefect_yaml,
    )

    if server:
        schema = parameter_schema(deployment)
    else:
        found = [
            d
            for d in read_prefect_yaml(prefect_file)["deployments"]
            if d.get("name") == deployment.split("/")[-1]
        ]
        if not found:
            raise DeploymentError(f"{prefect_file} defines no deployment named {deployment!r}")
        schema = local_parameter_schema(str(found[0]["entrypoint"]))
    table = Table(title=f"Run form of {deployment}")
    for col in ("field", "type", "default", "description"):
        table.add_column(col, overflow="fold")
    for f in form_fields(schema):
        default = json.dumps(f.default) if f.has_default and not f.type.startswith("section") else ""
        table.add_row(f.path + (" *" if f.required else ""), f.type, default, f.description)
    console.print(table)


@command("trigger")
def trigger_cmd(
    deployment: Annotated[str, typer.Argument(help="deployment name (remix, or flow/deployment)")] = "remix",
    config: Annotated[
        Path | None, typer.Option(help="run config YAML passed as the `config` parameter")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="idempotency key (e.g. the commit id): same key, same run")
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for a final state")] = 3600.0,
) -> None:
    """Start a deployment's run on the server in PREFECT_API_URL, wait, and exit 0 only if it completed."""
    import httpx

    from automixer.deploy import trigger
    from automixer_core.config import RunConfig, load_config
    from automixer_core.store import Store

    cfg: RunConfig | None = load_config(config) if config else None
    params = {"config": cfg.model_dump(mode="json")} if cfg else {}
    try:
        result = trigger(
            deployment, params, key, timeout_s=timeout, on_state=lambda s: console.print(f"state: {s}")
        )
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout) as exc:
        from automixer.runtime import configured_api_url
        from automixer_core.errors import ExecutionError

        _fail(
            ExecutionError(
                f"Cannot reach the Prefect API at {configured_api_url() or '(PREFECT_API_URL unset)'} "
                f"({type(exc).__name__}: {exc})",
                fix="start the server (prefect server start) or set PREFECT_API_URL to the server your "
                "workers poll",
            )
        )
    what = "started" if result.created else "found (same idempotency key)"
    console.print(
        f"flow run {result.flow_run_name} ({result.flow_run_id}) {what}: {result.state_name}", soft_wrap=True
    )
    if result.url:
        console.print(f"  {result.url}")
    if not result.ok:
        err_console.print(f"[bold red]not completed:[/] {result.message}")
        raise typer.Exit(code=1)
    if result.message and result.message != result.state_name:
        console.print(f"{result.state_name}: {result.message}")
    if cfg is not None and Store(cfg.store).exists("mixtures/latest.json"):
        latest = Store(cfg.store).read_json("mixtures/latest.json")
        console.print(f"mixture {latest['id']}: {latest['uri']}")
