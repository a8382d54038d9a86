"""The Dockerfiles, read by a small line parser (no Docker engine here): what they copy exists and
is not ignored, what they run refers to real files and commands, and the images fit the deployments.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = {"cpu": REPO / "docker" / "Dockerfile.cpu", "gpu": REPO / "docker" / "Dockerfile.gpu"}
POOLS = {"cpu": "automixer-cpu", "gpu": "automixer-gpu"}
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


@dataclass
class Instruction:
    name: str
    args: str
    line: int


def parse(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined, comments and blank lines dropped."""
    out: list[Instruction] = []
    buf, start = "", 0
    for no, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if not buf:
            start = no
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        name, _, args = buf.partition(" ")
        out.append(Instruction(name.upper(), args.strip(), start))
        buf = ""
    assert not buf, f"{path}: dangling line continuation"
    return out


def build_args(instructions: list[Instruction]) -> dict[str, str]:
    args: dict[str, str] = {}
    for ins in instructions:
        if ins.name == "ARG" and "=" in ins.args:
            key, _, value = ins.args.partition("=")
            args[key.strip()] = value.strip().strip('"')
    return args


def expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def ignored(rel: str, patterns: list[str]) -> bool:
    """Whether `rel` (or a folder above it) matches a .dockerignore pattern (negations not used here)."""
    parts = Path(rel).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        pat = pattern.rstrip("/")
        for cand in candidates:
            if fnmatch.fnmatch(cand, pat) or (
                pat.startswith("**/") and fnmatch.fnmatch(Path(cand).name, pat[3:])
            ):
                return True
    return False


@pytest.fixture(params=sorted(DOCKERFILES))
def image(request: pytest.FixtureRequest) -> tuple[str, list[Instruction]]:
    return str(request.param), parse(DOCKERFILES[str(request.param)])


def test_dockerignore_excludes_local_state() -> None:
    patterns = dockerignore()
    for path in (".venv/bin/python", "runs/demo/proxy/step-10/model.safetensors", ".automixer/store/x"):
        assert ignored(path, patterns), f"{path} would be sent to the Docker build context"
    for path in ("pyproject.toml", "automixer_core/config.py", "flows/remix.py", "configs/example.yaml"):
        assert not ignored(path, patterns), f"{path} is needed by the images but ignored"


def test_base_images(image: tuple[str, list[Instruction]]) -> None:
    kind, ins = image
    (base,) = [expand(i.args, build_args(ins)) for i in ins if i.name == "FROM"]
    if kind == "cpu":
        assert base == "python:3.11-slim"
    else:
        assert base.startswith("nvidia/cuda:") and "runtime" in base


def test_copy_sources_exist_and_are_in_the_build_context(image: tuple[str, list[Instruction]]) -> None:
    kind, ins = image
    patterns = dockerignore()
    copies = [i for i in ins if i.name in ("COPY", "ADD")]
    assert copies, f"Dockerfile.{kind} copies nothing"
    for i in copies:
        assert i.name == "COPY", f"Dockerfile.{kind}:{i.line}: use COPY, not ADD"
        words = [w for w in shlex.split(i.args) if not w.startswith("--")]
        for src in words[:-1]:
            assert (REPO / src).exists(), f"Dockerfile.{kind}:{i.line}: COPY source {src} does not exist"
            assert not ignored(src, patterns), f"Dockerfile.{kind}:{i.line}: {src} is in .dockerignore"


def _copied_before(ins: list[Instruction], line: int) -> set[str]:
    out: set[str] = set()
    for i in ins:
        if i.name == "COPY" and i.line < line:
            out.update(w.rstrip("/") for w in shlex.split(i.args)[:-1] if not w.startswith("--"))
    return out


def test_project_install_has_what_pyproject_needs(image: tuple[str, list[Instruction]]) -> None:
    """`pip install .` runs after pyproject.toml, its readme and every package it finds are copied,
    and after a pinned torch matching the Makefile's pin."""
    kind, ins = image
    args = build_args(ins)
    runs = [(i.line, expand(i.args, args)) for i in ins if i.name == "RUN"]
    install = [line for line, cmd in runs if re.search(r"pip install \.(\s|$)", cmd)]
    assert install, f"Dockerfile.{kind} never runs `pip install .`"
    copied = _copied_before(ins, install[0])
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"]}
    needed |= {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    for path in sorted(needed):
        assert (REPO / path).exists(), f"pyproject.toml refers to {path}, which does not exist"
        assert path in copied, f"Dockerfile.{kind}: {path} is not copied before `pip install .`"

    makefile_pin = re.search(r"torch==([\w.]+)", (REPO / "Makefile").read_text())
    assert makefile_pin is not None
    torch_runs = [(line, cmd) for line, cmd in runs if "pip install" in cmd and "torch==" in cmd]
    assert torch_runs, f"Dockerfile.{kind} does not pin torch"
    line, cmd = torch_runs[0]
    assert f"torch=={makefile_pin.group(1)}" in cmd, "torch pin differs from the Makefile's"
    assert line < install[0], "torch must be installed before the project (else pip resolves its own)"
    assert "--index-url" in cmd and ("/cpu" if kind == "cpu" else "/cu") in cmd


def test_commands_exist(image: tuple[str, list[Instruction]]) -> None:
    """The console script the images call is the one pyproject defines, the CMD starts a worker of
    the right pool, and AUTOMIXER_REPO (read by the deployments' pull step) is the working dir."""
    kind, ins = image
    scripts = PYPROJECT["project"]["scripts"]
    runs = " ".join(i.args for i in ins if i.name == "RUN")
    for word in re.findall(r"(?:^|&&\s*|;\s*)([\w-]+) --help", runs):
        assert word in scripts or word == "prefect", f"Dockerfile.{kind} runs unknown command {word}"
    assert "automixer" in scripts and "automixer --help" in runs

    (cmd,) = [i for i in ins if i.name == "CMD"]
    argv = yaml.safe_load(cmd.args)  # exec form: a JSON list
    assert argv[:3] == ["prefect", "worker", "start"]
    assert argv[argv.index("--pool") + 1] == POOLS[kind]
    assert not [i for i in ins if i.name == "ENTRYPOINT"], "an ENTRYPOINT would swallow the job's command"

    prefect_yaml = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    pools = {d["work_pool"]["name"] for d in prefect_yaml["deployments"]}
    assert POOLS[kind] in pools

    env = " ".join(i.args for i in ins if i.name == "ENV")
    workdirs = [i.args for i in ins if i.name == "WORKDIR"]
    assert workdirs and f"AUTOMIXER_REPO={workdirs[-1]}" in env, "AUTOMIXER_REPO must be the WORKDIR"
    users = [i.args for i in ins if i.name == "USER"]
    assert users and users[-1] not in ("root", "0"), "run as an unprivileged user"


def test_no_credentials_in_images() -> None:
    for path in DOCKERFILES.values():
        text = path.read_text()
        assert not re.search(r"(AWS_SECRET_ACCESS_KEY|PREFECT_API_KEY)\s*=", text), path
        assert not [i for i in parse(path) if i.name == "ENV" and "KEY" in i.args], path
