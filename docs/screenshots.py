"""Screenshots of a finished run for the README: the mixture's report.html and the Prefect UI pages,
rendered by headless Chromium (Debian's ``chromium`` package: ``apt-get install chromium``).

    # the report of the store's latest mixture only
    .venv/bin/python docs/screenshots.py --store runs/demo/store --out docs/screenshots
    # plus the UI of a Prefect server that has run a remix (and has the remix deployment)
    .venv/bin/python docs/screenshots.py --store runs/demo/store --out docs/screenshots \\
        --api-url http://127.0.0.1:4200/api
    # everything in one command: start a private server, `automixer deploy`, run a remix on it,
    # take every screenshot, stop the server (needs `automixer demo` to have run once)
    .venv/bin/python docs/screenshots.py --serve --store runs/demo/store --out docs/screenshots

It writes ``report.png`` (the latest mixture's report.html, ``mixtures/latest.json`` of the
store), and with a server ``flow-run.png`` (the latest remix flow run that published a mixture),
``artifacts.png`` (the Artifacts page), ``artifact-weights.png`` (that run's ``mixture-weights``
table artifact) and ``deployment-form.png`` (the custom-run form of the ``remix`` deployment).
The report is cropped of trailing blank space; every PNG is kept under ``--max-kb``. The UI pages
are retaken with more virtual time when the UI was caught refetching (it dims everything then).

With ``--serve`` the remix runs on a scratch copy of the store (``<store>-ui``, without
``mixtures/latest.json`` and leases): everything it needs is already computed there, so it runs
every step from the store's results in a minute or two and publishes the same mixture with all its
artifacts, where a remix on the store itself would stop at once with "nothing new".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from uuid import UUID

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class CaptureError(RuntimeError):
    """A screenshot could not be taken; the message says why and what to do."""


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium binary: ``explicit``, else the first of :data:`CHROMIUM_NAMES` on PATH."""
    if explicit:
        if shutil.which(explicit) is None:
            raise CaptureError(f"--chromium {explicit} is not an executable")
        return explicit
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise CaptureError(
        f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)} on PATH). "
        "Fix: apt-get install chromium (Debian), or pass --chromium PATH"
    )


def _chromium_screenshot(
    chromium: str, url: str, png: Path, *, width: int, height: int, budget_ms: int, profile: Path
) -> str:
    """One headless screenshot; returns Chromium's stderr ('' when the file was written)."""
    png.unlink(missing_ok=True)
    cmd = [
        chromium,
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        f"--virtual-time-budget={budget_ms}",
        f"--screenshot={png}",
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0 or not png.is_file():
        return f"exit {proc.returncode}: {proc.stderr[-1500:]}"
    return ""


def _still_loading(png: Path) -> bool:
    """Whether the Prefect UI was caught fetching: it then dims its whole content area, so nothing
    right of the sidebar is brighter than grey (its dark theme draws text near white)."""
    from PIL import Image

    with Image.open(png) as opened:
        im = opened.convert("L")
    main = im.crop((im.width // 5, 0, im.width, min(im.height, 700)))
    return max(main.getextrema()) < 200


def shoot(
    chromium: str,
    url: str,
    png: Path,
    *,
    width: int,
    height: int,
    budget_ms: int,
    profile: Path,
    spa: bool = False,
    attempts: int = 5,
) -> None:
    """A headless screenshot of ``url`` at ``width`` x ``height``. ``budget_ms`` of virtual time
    lets the page fetch and render (Chromium pauses virtual time while requests are pending, so a
    slow machine needs no larger budget). A single-page app (``spa``) that was caught while
    refetching is taken again with a longer budget, up to ``attempts`` times."""
    png.parent.mkdir(parents=True, exist_ok=True)
    why = ""
    for attempt in range(attempts):
        budget = budget_ms + 1700 * attempt
        why = _chromium_screenshot(
            chromium, url, png, width=width, height=height, budget_ms=budget, profile=profile
        )
        if why:
            continue
        if spa and _still_loading(png):
            why = f"the page was still loading after {budget} ms of virtual time"
            continue
        return
    raise CaptureError(f"no screenshot of {url} after {attempts} attempts; last: {why}")


def tidy(png: Path, *, max_bytes: int, crop_blank: bool = True, min_height: int = 600) -> tuple[int, int]:
    """Crop trailing rows that are all background (``crop_blank``), then save the PNG small: a
    256-colour palette, and downscaled while it is still over ``max_bytes``. Returns its size."""
    from PIL import Image, ImageChops

    with Image.open(png) as opened:
        im = opened.convert("RGB")
    if crop_blank:
        bg = Image.new("RGB", im.size, im.getpixel((im.width - 1, im.height - 1)))
        box = ImageChops.difference(im, bg).getbbox()
        if box is not None:
            im = im.crop((0, 0, im.width, min(im.height, max(box[3] + 40, min_height))))
    colours = im.getcolors(maxcolors=4096)
    if colours is not None and len(colours) < 8:
        raise CaptureError(
            f"{png.name} is blank ({len(colours)} colours): the page had not rendered; "
            "raise --budget-ms or look at the page in a browser"
        )
    scale = 1.0
    while True:
        out = (
            im if scale == 1.0 else im.resize((int(im.width * scale), int(im.height * scale)), Image.LANCZOS)
        )
        out.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            png, optimize=True
        )
        if png.stat().st_size <= max_bytes or scale < 0.4:
            return out.size
        scale *= 0.85


# ---------------------------------------------------------------------------------------------------
# the report


def report_screenshot(chromium: str, store: str, out: Path, args: argparse.Namespace, work: Path) -> Path:
    """``report.png``: the report.html of the store's latest mixture (``mixtures/latest.json``)."""
    sys.path.insert(0, str(REPO))
    from automixer_core.store import Store

    s = Store(store)
    if not s.exists("mixtures/latest.json"):
        raise CaptureError(
            f"{store} has no mixtures/latest.json: no mixture was published there. "
            "Fix: run `automixer demo` (or `automixer remix CONFIG`) first"
        )
    mixture_id = s.read_json("mixtures/latest.json")["id"]
    page = work / f"report-{mixture_id}.html"  # a local copy: the store may be s3://
    page.write_text(s.read_text(f"mixtures/{mixture_id}/report.html"), encoding="utf-8")
    png = out / "report.png"
    shoot(
        chromium,
        page.as_uri(),
        png,
        width=args.report_width,
        height=args.report_height,
        budget_ms=5000,
        profile=work / "profile",
    )
    size = tidy(png, max_bytes=args.max_kb * 1000)
    print(f"report.png: mixture {mixture_id}, {size[0]}x{size[1]}, {png.stat().st_size // 1000} kB")
    if size[1] * args.report_width >= args.report_height * size[0]:  # nothing cropped: cut off?
        print(f"warning: the report may be longer than --report-height {args.report_height}; raise it")
    return png


# ---------------------------------------------------------------------------------------------------
# the Prefect UI


@contextmanager
def prefect_api(api_url: str) -> Iterator[Any]:
    """A sync Prefect client of the server at ``api_url``."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        yield client


def ui_targets(api_url: str, deployment: str = "remix/remix") -> dict[str, str]:
    """The ids the UI pages need: the latest remix flow run that published a mixture (the newest
    ``mixture-report`` artifact's run; else the newest completed ``remix`` run) and the deployment."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort

    with prefect_api(api_url) as client:
        run_id = None
        reports = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["mixture-report"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
        if reports and reports[0].flow_run_id is not None:
            run_id = str(reports[0].flow_run_id)
        else:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["remix"])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
                ),
                sort=FlowRunSort.START_TIME_DESC,
                limit=1,
            )
            if not runs:
                raise CaptureError(f"no completed remix flow run on {api_url}. Fix: run a remix against it")
            run_id = str(runs[0].id)
        try:
            deployment_id = str(client.read_deployment_by_name(deployment).id)
        except Exception as exc:
            raise CaptureError(
                f"no deployment {deployment} on {api_url} ({type(exc).__name__}). Fix: automixer deploy"
            ) from exc
        weights = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["mixture-weights"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]),
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    ids = {"flow_run": run_id, "deployment": deployment_id}
    if weights:
        ids["weights_artifact"] = str(weights[0].id)
    return ids


def ui_screenshots(
    chromium: str, api_url: str, out: Path, args: argparse.Namespace, work: Path
) -> list[Path]:
    """``flow-run.png``, ``artifacts.png``, ``deployment-form.png`` and ``artifact-weights.png``
    from the server's UI."""
    ids = ui_targets(api_url)
    ui = api_url.rstrip("/").removesuffix("/api")
    with urllib.request.urlopen(f"{ui}/ui-settings", timeout=30) as r:
        ui_api = json.loads(r.read()).get("api_url", "").rstrip("/")
    if ui_api != api_url.rstrip("/"):
        raise CaptureError(
            f"the UI at {ui} talks to {ui_api}, not {api_url}: its pages would show 'Something went wrong'. "
            f"Fix: start the server with PREFECT_UI_API_URL={api_url}"
        )
    # The run page's Artifacts tab cannot be opened by URL: the UI hides that tab until the run
    # has loaded and falls back to Logs, so the artifacts are shown on their own pages.
    pages = [
        ("flow-run.png", f"{ui}/runs/flow-run/{ids['flow_run']}", args.ui_height),
        ("artifacts.png", f"{ui}/artifacts", args.ui_height),
        ("deployment-form.png", f"{ui}/deployments/deployment/{ids['deployment']}/run", args.form_height),
    ]
    if "weights_artifact" in ids:
        pages.append(
            ("artifact-weights.png", f"{ui}/artifacts/artifact/{ids['weights_artifact']}", args.ui_height)
        )
    written = []
    for name, url, height in pages:
        png = out / name
        shoot(
            chromium,
            url,
            png,
            width=args.ui_width,
            height=height,
            budget_ms=args.budget_ms,
            profile=work / "profile",
            spa=True,
        )
        size = tidy(png, max_bytes=args.max_kb * 1000, crop_blank=False)
        print(f"{name}: {url}, {size[0]}x{size[1]}, {png.stat().st_size // 1000} kB")
        written.append(png)
    return written


# ---------------------------------------------------------------------------------------------------
# --serve: a private server, the deployments and a remix on it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(api_url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CaptureError(f"prefect server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise CaptureError(f"prefect server did not answer within {timeout_s:.0f}s: {log.read_text()[-2000:]}")


def _ensure_pools(api_url: str) -> None:
    """The work pools deployments/prefect.yaml names (deploy refuses without them)."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    template = json.loads((REPO / "deployments" / "gpu-job-template.json").read_text())
    with prefect_api(api_url) as client:
        for name, kind, tmpl in (("automixer-cpu", "process", {}), ("automixer-gpu", "kubernetes", template)):
            with suppress(ObjectAlreadyExists):
                client.create_work_pool(WorkPoolCreate(name=name, type=kind, base_job_template=tmpl))


def _scratch_config(store: str, config: Path | None, work: Path) -> Path:
    """The run config for the remix on the server, its store a scratch copy of ``store``."""
    import yaml

    sys.path.insert(0, str(REPO))
    if config is not None:
        cfg: dict[str, Any] = yaml.safe_load(config.read_text())
    else:
        from automixer.cli import DEFAULT_DATA
        from automixer.demo import demo_run_config

        cfg = demo_run_config(DEFAULT_DATA, Path(store).parent)  # what `automixer demo` ran
    if "://" in store:
        raise CaptureError("--serve copies the store to a scratch folder: give a local --store")
    scratch = Path(f"{store.rstrip('/')}-ui")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(store, scratch, ignore=shutil.ignore_patterns("leases"))
    (scratch / "mixtures" / "latest.json").unlink(missing_ok=True)
    cfg["store"] = str(scratch)
    cfg.setdefault("execution", {})["mode"] = "local"
    path = work / "remix.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _run(cmd: list[str], env: dict[str, str], what: str, timeout_s: float) -> None:
    print(f"$ {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise CaptureError(f"{what} failed (exit {proc.returncode}): {(proc.stdout + proc.stderr)[-3000:]}")


@contextmanager
def private_server(work: Path, timeout_s: float) -> Iterator[str]:
    """``prefect server start`` on a free port with its own PREFECT_HOME; yields its API URL."""
    home = work / "prefect-home"
    home.mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    api_url = f"http://127.0.0.1:{port}/api"
    # The UI asks /ui-settings where the API is; without this it answers port 4200, not --port.
    env.update(PREFECT_HOME=str(home), PREFECT_UI_API_URL=api_url, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    log = work / "server.log"
    cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    print(f"$ {' '.join(cmd)}", flush=True)
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(api_url, proc, log, timeout_s)
        yield api_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_and_capture(chromium: str, args: argparse.Namespace, out: Path, work: Path) -> list[Path]:
    """The whole capture on a private server: deploy, remix, screenshots; the server is stopped after."""
    config = _scratch_config(args.store, args.config, work)
    with private_server(work, args.server_timeout) as api_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_API_URL=api_url,
            PREFECT_HOME=str(work / "prefect-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
        )
        _ensure_pools(api_url)
        _run([str(BIN / "automixer"), "deploy"], env, "automixer deploy", 900)
        _run([str(BIN / "automixer"), "remix", str(config)], env, "automixer remix", 3600)
        return ui_screenshots(chromium, api_url, out, args, work)


# ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--store", default="runs/demo/store", help="the store holding mixtures/latest.json")
    p.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="where the PNGs go")
    p.add_argument(
        "--api-url", help="a Prefect server that ran a remix (http://HOST:PORT/api): the UI pages too"
    )
    p.add_argument(
        "--serve",
        action="store_true",
        help="start a private Prefect server, `automixer deploy` and a remix on it, screenshot its UI, stop it",
    )
    p.add_argument("--config", type=Path, help="--serve: the remix's run config (default: the demo's)")
    p.add_argument("--no-report", action="store_true", help="skip report.png")
    p.add_argument(
        "--chromium", help="the Chromium binary (default: chromium, chromium-browser, google-chrome)"
    )
    p.add_argument("--report-width", type=int, default=1100)
    p.add_argument("--report-height", type=int, default=9000, help="taller than the report; blank is cropped")
    p.add_argument("--ui-width", type=int, default=1440)
    p.add_argument("--ui-height", type=int, default=1000)
    p.add_argument("--form-height", type=int, default=1500)
    p.add_argument(
        "--budget-ms",
        type=int,
        default=4000,
        help="virtual time the UI gets to render (it refetches every 5 s and dims while it does)",
    )
    p.add_argument("--server-timeout", type=float, default=600, help="seconds the server may take to start")
    p.add_argument("--max-kb", type=int, default=390, help="largest PNG size")
    args = p.parse_args(argv)
    if args.serve and args.api_url:
        p.error("--serve starts its own server: leave out --api-url")
    try:
        chromium = find_chromium(args.chromium)
        args.out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="automixer-screenshots-") as tmp:
            work = Path(tmp)
            if not args.no_report:
                report_screenshot(chromium, args.store, args.out, args, work)
            if args.serve:
                serve_and_capture(chromium, args, args.out, work)
            elif args.api_url:
                ui_screenshots(chromium, args.api_url, args.out, args, work)
    except CaptureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
