"""The run config: one YAML file = one reproducible run (DESIGN §3).

Every section is a typed model with the defaults of DESIGN §1; an unknown key or a bad value is a
:class:`~automixer_core.errors.ConfigError` naming the field, the value and the fix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from automixer_core.aggregation import AggregationConfig
from automixer_core.benchmarks import PAPER_BENCHMARKS, BenchmarkSpec
from automixer_core.benchmarks.registry import canonical_name
from automixer_core.errors import BenchmarkError, ConfigError
from automixer_core.evaluation import EvalConfig
from automixer_core.exports import FORMATS
from automixer_core.influence import InfluenceConfig
from automixer_core.labels.config import LabelingConfig
from automixer_core.schema import explicit_defaults
from automixer_core.selection import SelectionConfig
from automixer_core.validation.config import ValidationConfig

#: How a relative path in a run config resolves (the run form shows it under every path field).
RELATIVE = (
    " (a relative path resolves in the folder the run starts in; on a worker, its checkout: $AUTOMIXER_REPO)"
)


class CheckpointsConfig(BaseModel):
    """Where the training run's checkpoints are."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=explicit_defaults)

    uri: str = Field(
        description="folder or s3:// prefix holding the checkpoints (or hf://org/repo)" + RELATIVE
    )
    revision: str | list[str] | None = Field(None, description="hub revisions, or folder names to keep")


class BenchmarksConfig(BaseModel):
    """Which benchmarks, from where, and which rows."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=explicit_defaults)

    names: list[str] = Field(
        default_factory=lambda: list(PAPER_BENCHMARKS), description="registered benchmark names"
    )
    data_dir: Path | None = Field(
        None,
        description="folder holding benchmarks/NAME/SPLIT.jsonl" + RELATIVE,
    )
    custom: list[Path] = Field(default_factory=list, description="custom benchmark YAML files")
    eval_limit: int | None = Field(
        200, ge=1, description="evaluate a seeded sample of this many rows (None: all)"
    )
    query_limit: int | None = Field(100, ge=1, description="influence query rows per benchmark")
    seed: int = Field(0, description="seed of the evaluation and query samples")

    @field_validator("names")
    @classmethod
    def _registered(cls, names: list[str]) -> list[str]:
        """Every name is a registered benchmark (checked when the config loads, before any work)."""
        from automixer_core.benchmarks.registry import list_tasks

        unknown = []
        for n in names:
            try:
                canonical_name(n)
            except BenchmarkError:
                unknown.append(n)
        if unknown:
            raise ValueError(
                f"unknown benchmark(s) {unknown}; registered: {', '.join(list_tasks())} (custom benchmarks go "
                "under benchmarks.custom as YAML files)"
            )
        return names

    @model_validator(mode="after")
    def _some_benchmark(self) -> BenchmarksConfig:
        if not self.names and not self.custom:
            raise ValueError(
                "no benchmark to evaluate: names is empty and there are no custom benchmarks; "
                f"list registered benchmarks under benchmarks.names (e.g. {', '.join(PAPER_BENCHMARKS[:2])}, "
                "or leave names out for the paper's eight) or custom benchmark YAML files under benchmarks.custom"
            )
        return self

    def specs(self) -> list[BenchmarkSpec]:
        """One :class:`BenchmarkSpec` per benchmark, built-in then custom."""
        common: dict[str, Any] = {
            "eval_limit": self.eval_limit,
            "query_limit": self.query_limit,
            "seed": self.seed,
        }
        out = [BenchmarkSpec(name=n, data_dir=self.data_dir, **common) for n in self.names]
        for path in self.custom:
            from automixer_core.benchmarks import load_custom_task

            task = load_custom_task(path)
            out.append(BenchmarkSpec(name=task.name, custom_yaml=path, **common))
        return out


class CorpusConfig(BaseModel):
    """The source corpus to score and re-weight."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=explicit_defaults)

    uri: str = Field(description="folder or s3:// prefix of jsonl, jsonl.gz or parquet files" + RELATIVE)
    text_field: str = Field("text", description="field holding the document text")
    id_field: str = Field("id", description="field holding a stable document id (else file:row)")
    group_field: str = Field("domain", description="field holding a domain label (else the file's folder)")
    shard_docs: int = Field(2000, ge=1, description="documents per shard (the unit of scoring and caching)")
    shards_per_task: int = Field(1, ge=1, description="shards scored by one task")
    max_docs_per_file: int | None = Field(
        None, ge=1, description="score only the first N rows of each file (ours: demos and smoke runs)"
    )
    max_doc_chars: int | None = Field(
        None,
        ge=1,
        description="score only the first N characters of each document (ours: demos and smoke runs)",
    )
    target_width: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="score a sample, not every shard: shards in a seeded random order, round_shards at a "
        "time, until every group's 90% weight interval is at most this wide (0.05 = 5 points of weight) "
        "or every shard is scored; documents not scored get a group from automixer label",
    )
    round_shards: int = Field(
        8,
        ge=1,
        description="with target_width: shards added to the sample per round (per artifact checkpoint)",
    )
    sample_seed: int = Field(0, description="with target_width: the seed of the shards' random order")
    allow_empty: bool = Field(
        False,
        description="skip empty corpus files (no rows, or blank lines only) and domain folders without "
        "files, with a warning; false: such files and folders are an error naming them",
    )


class PublishConfig(BaseModel):
    """What a published mixture carries."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=explicit_defaults)

    exports: list[str] = Field(
        default_factory=lambda: list(FORMATS), description=f"trainer formats among {FORMATS}"
    )

    @field_validator("exports")
    @classmethod
    def _known_formats(cls, exports: list[str]) -> list[str]:
        unknown = [f for f in exports if f not in FORMATS]
        if unknown:
            raise ValueError(f"unknown export format(s) {unknown}; known: {', '.join(FORMATS)}")
        return exports


class ExecutionConfig(BaseModel):
    """Where the influence scoring runs (DESIGN §4). Not part of a mixture's identity: every mode
    scores the same units into the same store keys, so the published mixture is the same."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=explicit_defaults)

    mode: Literal["local", "workpool", "dask"] = Field(
        "local",
        description="local: in this process | workpool: one query-vectors flow run per artifact "
        "checkpoint, one score-shards flow run per checkpoint × shard batch (and one train-target run "
        "per validation target) on a Prefect work pool | "
        "dask: tasks on a Dask cluster, one GPU resource each",
    )
    deployment: str = Field(
        "score-shards/score-shards",
        description="workpool: the scoring deployment (flow/deployment) whose pool has the GPU workers",
    )
    query_deployment: str = Field(
        "query-vectors/query-vectors",
        description="workpool: the deployment that builds one artifact checkpoint's query vectors",
    )
    train_deployment: str = Field(
        "train-target/train-target",
        description="workpool: the deployment that trains one validation target (candidate × seed)",
    )
    label_deployment: str = Field(
        "label-shards/label-shards",
        description="workpool: the deployment that labels one batch of corpus shards (automixer label)",
    )
    dask_address: str | None = Field(
        None,
        description="dask: the scheduler address (tcp://host:8786); workers declare `--resources GPU=1`",
    )
    gpu_concurrency: int | None = Field(
        None,
        ge=1,
        description="at most this many scoring units run at once, across every mode and machine "
        "(a Prefect global concurrency limit; None: no limit)",
    )
    gpu_limit_name: str = Field("automixer-gpu", description="the name of that global concurrency limit")
    poll_s: float = Field(2.0, gt=0, description="workpool: seconds between checks on the submitted runs")
    timeout_s: float | None = Field(
        None, gt=0, description="workpool: stop waiting for the scoring runs after this long (None: wait)"
    )

    @property
    def gpu_limit(self) -> str | None:
        """The concurrency limit each scoring task holds a slot of, or None when unbounded."""
        return self.gpu_limit_name if self.gpu_concurrency else None

    @model_validator(mode="after")
    def _dask_needs_an_address(self) -> ExecutionConfig:
        if self.mode == "dask" and not self.dask_address:
            raise ValueError("mode 'dask' needs dask_address (the scheduler, e.g. tcp://scheduler:8786)")
        return self


class RunConfig(BaseModel):
    """A whole AutoMixer run."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=explicit_defaults)

    store: str = Field(
        ".automixer/store", description="root URI of every artifact (local path or s3://...)" + RELATIVE
    )
    checkpoints: CheckpointsConfig = Field(description="the training run's checkpoints")
    benchmarks: BenchmarksConfig = Field(
        default_factory=BenchmarksConfig, description="benchmarks and their rows"
    )
    evaluation: EvalConfig = Field(default_factory=EvalConfig, description="how checkpoints are evaluated")
    selection: SelectionConfig = Field(
        default_factory=SelectionConfig, description="how artifact models are chosen"
    )
    corpus: CorpusConfig | None = Field(None, description="the corpus to re-weight (required by remix)")
    influence: InfluenceConfig = Field(
        default_factory=InfluenceConfig, description="query vectors and scoring"
    )
    aggregation: AggregationConfig = Field(
        default_factory=AggregationConfig, description="groups and weights"
    )
    publish: PublishConfig = Field(
        default_factory=PublishConfig, description="what a published mixture carries"
    )
    execution: ExecutionConfig = Field(
        default_factory=ExecutionConfig, description="where the influence scoring runs"
    )
    validation: ValidationConfig = Field(
        default_factory=ValidationConfig,
        description="automixer validate: target proxies trained on candidate mixtures",
    )
    labeling: LabelingConfig = Field(
        default_factory=LabelingConfig,
        description="automixer label: groups predicted for the documents a remix did not score",
    )


#: Sections that do not change what a run computes (where it is stored, where it runs).
NOT_IN_IDENTITY = frozenset({"store", "execution", "validation", "labeling"})


def section_hash(section: BaseModel | dict[str, Any], *, exclude: set[str] | None = None) -> str:
    """A short, stable digest of a config section (the part of a cache key that config contributes)."""
    data = section.model_dump(mode="json", exclude=exclude) if isinstance(section, BaseModel) else section
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def format_validation_error(exc: ValidationError, source: str) -> ConfigError:
    """One ConfigError naming every bad field, its value, and what to do."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        shown = json.dumps(value, default=str)[:80] if not isinstance(value, dict) else "{...}"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key {loc!r}")
        elif err["type"] == "missing":
            lines.append(f"missing field {loc!r}")
        else:
            lines.append(f"field {loc!r} = {shown}: {err['msg']}")
    return ConfigError(
        f"Invalid config {source}: " + "; ".join(lines),
        fix="correct those fields (see configs/example.yaml for every option and its default)",
    )


def parse_config(data: dict[str, Any], model: type[BaseModel] = RunConfig, source: str = "<dict>") -> Any:
    """Validate ``data`` into ``model``; errors become :class:`ConfigError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(exc, source) from None


def load_config(path: str | Path, model: type[BaseModel] = RunConfig) -> Any:
    """Read a YAML run config. Relative paths inside it are relative to the working directory."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"Config file {str(path)!r} does not exist", fix="pass the path of a YAML run config"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"Config file {str(path)!r} is not valid YAML: {exc}", fix="fix the YAML syntax"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file {str(path)!r} holds a {type(data).__name__}",
            expected="a mapping of sections (store:, checkpoints:, benchmarks:, corpus:, ...)",
            fix="start from configs/example.yaml",
        )
    return parse_config(data, model, source=str(path))
