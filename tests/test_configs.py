"""Every shipped YAML config validates; errors name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from automixer_core.config import RunConfig, load_config
from automixer_core.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)
    assert cfg.corpus is not None


def test_unknown_key_and_bad_value_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("checkpoints: {uri: x}\ninfluence: {estimator: magic, layerz: all}\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    text = str(err.value)
    assert "influence.estimator" in text and "magic" in text
    assert "unknown key 'influence.layerz'" in text


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="holds a list"):
        load_config(tmp_path / "list.yaml")


def test_example_config_lists_every_option() -> None:
    """configs/example.yaml is the reference: every field of every section appears in it."""
    import yaml
    from pydantic import BaseModel

    example = Path(__file__).resolve().parents[1] / "configs" / "example.yaml"
    raw = yaml.safe_load(example.read_text())

    def missing(model: type[BaseModel], data: dict[str, object], prefix: str) -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            if name not in data:
                out.append(prefix + name)
                continue
            sub = field.annotation
            inner = [a for a in getattr(sub, "__args__", (sub,)) if isinstance(a, type)]
            for a in inner:
                if issubclass(a, BaseModel) and isinstance(data[name], dict):
                    out += missing(a, data[name], f"{prefix}{name}.")  # type: ignore[arg-type]
        return out

    assert missing(RunConfig, raw, "") == []


def test_dask_mode_needs_a_scheduler_address(tmp_path: Path) -> None:
    bad = tmp_path / "dask.yaml"
    bad.write_text("checkpoints: {uri: x}\nexecution: {mode: dask}\n")
    with pytest.raises(ConfigError, match=r"field 'execution'.*needs dask_address"):
        load_config(bad)
    bad.write_text("checkpoints: {uri: x}\nexecution: {mode: ray}\n")
    with pytest.raises(ConfigError, match=r"execution\.mode.*ray"):
        load_config(bad)


def test_gpu_limit_is_named_only_when_bounded() -> None:
    from automixer_core.config import ExecutionConfig

    assert ExecutionConfig().gpu_limit is None
    assert ExecutionConfig(gpu_concurrency=2, gpu_limit_name="gpus").gpu_limit == "gpus"
