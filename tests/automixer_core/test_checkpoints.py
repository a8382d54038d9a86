"""Checkpoint discovery (layouts, fingerprints, failures, hub refs, S3) and loading."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from automixer_core.checkpoints import (
    CheckpointRef,
    discover_checkpoints,
    hub_checkpoints,
    load_checkpoint,
    parse_hub_uri,
    parse_step,
)
from automixer_core.errors import CheckpointError
from automixer_core.proxy import ProxyConfig, train_proxy
from automixer_core.store import Store
from tests.fixtures_proxy import ProxyRun

SMALL_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "trainer_state.json",
)


def _clone(src: Path, dst: Path, *, skip: tuple[str, ...] = (), step: int | None = None) -> Path:
    """Copy a real checkpoint's files (not optimizer.pt) to ``dst``; optionally set trainer_state's step."""
    dst.mkdir(parents=True)
    for name in SMALL_FILES:
        if name not in skip:
            shutil.copyfile(src / name, dst / name)
    if step is not None and "trainer_state.json" not in skip:
        state = json.loads((dst / "trainer_state.json").read_text())
        state["global_step"] = step
        (dst / "trainer_state.json").write_text(json.dumps(state))
    return dst


@pytest.fixture()
def ckpt(proxy_run: ProxyRun) -> Path:
    """The real checkpoint-15 of the session's proxy run."""
    return proxy_run.path / "checkpoint-15"


def test_parse_step_names() -> None:
    assert parse_step("checkpoint-1000") == 1000
    assert parse_step("step1000") == parse_step("step_1000") == parse_step("step-1000") == 1000
    assert parse_step("global_step42") == 42
    assert parse_step("iter_0001000") == 1000
    assert parse_step("main") is None
    assert parse_step("checkpoint-best") is None
    assert parse_step("mystep100") is None


def test_proxy_run_folder_is_discovered_in_step_order(proxy_run: ProxyRun) -> None:
    found = discover_checkpoints(str(proxy_run.path))
    assert found.steps == [c.step for c in proxy_run.result.checkpoints] == [15, 30, 45, 60, 75, 90, 100]
    assert [c.uri for c in found.checkpoints] == [str(p) for p in proxy_run.checkpoints]
    assert found.skipped == []  # proxy_run.json at the root is not a checkpoint


def test_every_layout(ckpt: Path, tmp_path: Path) -> None:
    root = tmp_path / "run"
    _clone(ckpt, root / "iter_0000500")
    _clone(ckpt, root / "checkpoint-100")
    _clone(ckpt, root / "step200")
    _clone(ckpt, root / "step_300")
    _clone(ckpt, root / "global_step400")
    _clone(ckpt, root / "final", step=600)  # no step in the name: trainer_state.json's global_step
    # DeepSpeed keeps its own state inside the HF folder: still one checkpoint
    (root / "checkpoint-100" / "global_step100").mkdir()
    (root / "checkpoint-100" / "global_step100" / "mp_rank_00_model_states.pt").write_bytes(b"x")
    (root / "logs").mkdir()
    (root / "logs" / "events.txt").write_text("not a checkpoint")
    (root / "README.md").write_text("run notes")

    found = discover_checkpoints(str(root))
    assert [(c.name, c.step) for c in found.checkpoints] == [
        ("checkpoint-100", 100),
        ("step200", 200),
        ("step_300", 300),
        ("global_step400", 400),
        ("iter_0000500", 500),
        ("final", 600),
    ]
    assert all(c.uri == str(root / c.name) for c in found.checkpoints)
    assert found.skipped == []

    nested = tmp_path / "deeper"
    _clone(ckpt, nested / "exp" / "checkpoints" / "step_7")
    assert discover_checkpoints(str(nested)).steps == [7]


def test_uri_that_is_one_checkpoint(ckpt: Path, tmp_path: Path) -> None:
    one = discover_checkpoints(str(ckpt))
    assert [(c.name, c.step, c.uri) for c in one.checkpoints] == [("checkpoint-15", 15, str(ckpt))]

    model_dir = _clone(ckpt, tmp_path / "model", step=1234)
    assert discover_checkpoints(str(model_dir)).steps == [1234]
    bare = _clone(ckpt, tmp_path / "exported", skip=("trainer_state.json",))
    assert discover_checkpoints(str(bare)).steps == [0]  # a lone checkpoint naming no step

    deepspeed = _clone(ckpt, tmp_path / "checkpoint-70")
    (deepspeed / "global_step70").mkdir()
    (deepspeed / "global_step70" / "mp_rank_00_model_states.pt").write_bytes(b"x")
    found = discover_checkpoints(str(deepspeed))  # its global_step70/ is its own DeepSpeed state
    assert [(c.name, c.step) for c in found.checkpoints] == [("checkpoint-70", 70)]
    assert found.skipped == []


def test_trainer_output_dir_with_final_model_at_the_root(ckpt: Path, tmp_path: Path) -> None:
    root = _clone(ckpt, tmp_path / "output_dir", step=300)  # trainer.save_model() at the root
    _clone(ckpt, root / "checkpoint-100")
    _clone(ckpt, root / "checkpoint-200")
    found = discover_checkpoints(str(root))
    assert found.steps == [100, 200]
    assert [u for u, _ in found.skipped] == [str(root)]
    assert "run folder's own model is left out" in found.skipped[0][1]


def test_fingerprint_changes_with_files_and_only_then(ckpt: Path, tmp_path: Path) -> None:
    root = tmp_path / "run"
    for step in (1, 2, 3):
        _clone(ckpt, root / f"checkpoint-{step}")
    first = {c.name: c.fingerprint for c in discover_checkpoints(str(root)).checkpoints}
    assert {c.name: c.fingerprint for c in discover_checkpoints(str(root)).checkpoints} == first
    assert first["checkpoint-1"] == Store(str(root / "checkpoint-1")).fingerprint("")

    cfg = root / "checkpoint-2" / "config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "note": "edited"}))
    (root / "checkpoint-3" / "extra.txt").write_text("new file")
    second = {c.name: c.fingerprint for c in discover_checkpoints(str(root)).checkpoints}
    assert second["checkpoint-1"] == first["checkpoint-1"]
    assert second["checkpoint-2"] != first["checkpoint-2"]
    assert second["checkpoint-3"] != first["checkpoint-3"]


def test_incomplete_checkpoints_are_skipped_with_reasons(
    ckpt: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "run"
    _clone(ckpt, root / "checkpoint-100")
    _clone(ckpt, root / "checkpoint-200", skip=("model.safetensors",))
    _clone(ckpt, root / "checkpoint-300", skip=("config.json",))
    (root / "iter_0000400" / "mp_rank_00").mkdir(parents=True)
    (root / "iter_0000400" / "mp_rank_00" / "model_optim_rng.pt").write_bytes(b"x")
    _clone(ckpt, root / "best", skip=("trainer_state.json",))  # a model, but no step anywhere
    with caplog.at_level(logging.WARNING, logger="automixer_core.checkpoints"):
        found = discover_checkpoints(str(root))
    assert found.steps == [100]
    reasons = dict(found.skipped)
    assert set(reasons) == {
        str(root / n) for n in ("checkpoint-200", "checkpoint-300", "iter_0000400", "best")
    }
    assert "missing model weights" in reasons[str(root / "checkpoint-200")]
    assert "missing config.json" in reasons[str(root / "checkpoint-300")]
    assert "Megatron" in reasons[str(root / "iter_0000400")]
    assert "encodes no step" in reasons[str(root / "best")]
    assert sum("Skipping checkpoint" in r.message for r in caplog.records) == 4


def test_empty_missing_and_unusable_locations(ckpt: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="is empty or does not exist") as e:
        discover_checkpoints(str(empty))
    assert str(empty) in str(e.value) and "Fix:" in str(e.value)
    with pytest.raises(CheckpointError, match="is empty or does not exist"):
        discover_checkpoints(str(tmp_path / "missing"))
    with pytest.raises(CheckpointError, match="is a file"):
        discover_checkpoints(str(ckpt / "config.json"))

    broken = tmp_path / "broken"
    _clone(ckpt, broken / "checkpoint-5", skip=("model.safetensors",))
    with pytest.raises(CheckpointError, match=r"No usable checkpoint.*missing model weights"):
        discover_checkpoints(str(broken))


def test_revision_selects_checkpoint_folders(proxy_run: ProxyRun) -> None:
    found = discover_checkpoints(str(proxy_run.path), revision=["checkpoint-90", "checkpoint-30"])
    assert found.steps == [30, 90]
    with pytest.raises(CheckpointError, match=r"No checkpoint.*'checkpoint-7'"):
        discover_checkpoints(str(proxy_run.path), revision="checkpoint-7")


# --- loading -------------------------------------------------------------------------------------


def test_load_checkpoint_returns_the_saved_model_in_eval_mode(proxy_run: ProxyRun) -> None:
    ref = discover_checkpoints(str(proxy_run.path)).checkpoints[-1]
    model, tok = load_checkpoint(ref)
    assert not model.training
    saved = load_file(str(Path(ref.uri) / "model.safetensors"))
    state = model.state_dict()
    for name, tensor in saved.items():
        assert torch.equal(state[name], tensor), name
    text = "Natalia sold clips to 48 of her friends in April."
    ids = torch.tensor([tok(text)["input_ids"]])
    assert tok.decode(ids[0]) == text
    with torch.no_grad():
        loss = float(model(input_ids=ids, labels=ids).loss)
    assert loss < math.log(len(tok)) - 0.5  # trained: better than uniform over the vocabulary

    half, _ = load_checkpoint(ref.uri, dtype=torch.bfloat16)
    assert next(half.parameters()).dtype == torch.bfloat16


def test_corrupt_or_incomplete_weights_name_the_file(ckpt: Path, tmp_path: Path) -> None:
    truncated = _clone(ckpt, tmp_path / "checkpoint-1")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"checkpoint-1/model.safetensors' is corrupt") as e:
        load_checkpoint(str(truncated))
    assert "Fix:" in str(e.value)

    garbage = _clone(ckpt, tmp_path / "checkpoint-2")
    (garbage / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match=r"checkpoint-2/model.safetensors' is corrupt"):
        load_checkpoint(str(garbage))

    no_weights = _clone(ckpt, tmp_path / "checkpoint-3", skip=("model.safetensors",))
    with pytest.raises(CheckpointError, match="incomplete: missing model weights"):
        load_checkpoint(str(no_weights))

    no_tok = _clone(ckpt, tmp_path / "checkpoint-4", skip=("tokenizer.json", "tokenizer_config.json"))
    with pytest.raises(CheckpointError, match="Cannot load a tokenizer"):
        load_checkpoint(str(no_tok))
    model, tok = load_checkpoint(str(no_tok), tokenizer=str(ckpt))
    assert len(tok) == model.config.vocab_size


# --- hub (no network) ----------------------------------------------------------------------------


def test_hub_uri_and_refs_map_to_checkpoints() -> None:
    assert parse_hub_uri("hf://EleutherAI/pythia-70m") == ("EleutherAI/pythia-70m", None)
    assert parse_hub_uri("hf://models/EleutherAI/pythia-70m@step3000") == (
        "EleutherAI/pythia-70m",
        "step3000",
    )
    with pytest.raises(CheckpointError, match="not a hub model URI"):
        parse_hub_uri("hf://pythia-70m")

    refs = [("main", "a" * 40), ("step3000", "c" * 40), ("step1000", "b" * 40), ("step143000", "d" * 40)]
    found = hub_checkpoints("EleutherAI/pythia-70m", refs)
    assert found.checkpoints == [
        CheckpointRef("step1000", "hf://EleutherAI/pythia-70m@step1000", 1000, "b" * 16, "step1000"),
        CheckpointRef("step3000", "hf://EleutherAI/pythia-70m@step3000", 3000, "c" * 16, "step3000"),
        CheckpointRef("step143000", "hf://EleutherAI/pythia-70m@step143000", 143000, "d" * 16, "step143000"),
    ]
    picked = hub_checkpoints("EleutherAI/pythia-70m", refs, revision=["step3000", "step1000"])
    assert picked.steps == [1000, 3000]
    assert hub_checkpoints("o/r", refs, revision="main").checkpoints[0].step == 0
    with pytest.raises(CheckpointError, match=r"has no revision\(s\) \['step5'\]"):
        hub_checkpoints("o/r", refs, revision="step5")
    only_main = hub_checkpoints("o/r", [("main", "e" * 40)])
    assert [(c.name, c.step, c.fingerprint) for c in only_main.checkpoints] == [("main", 0, "e" * 16)]


def test_hub_offline_is_a_clear_checkpoint_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # never touch the network
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match="Cannot list the revisions of hub repo 'org/model'") as e:
        discover_checkpoints("hf://org/model")
    assert "HF_HUB_OFFLINE" in str(e.value)
    with pytest.raises(CheckpointError, match="Cannot download 'hf://org/model@step1'"):
        load_checkpoint(CheckpointRef("step1", "hf://org/model@step1", 1, "0" * 16, "step1"))


# --- S3 ------------------------------------------------------------------------------------------


def test_proxy_run_written_to_s3_is_discovered_and_loaded_there(
    proxy_run: ProxyRun, shared_data: Path, s3_bucket: str, tmp_path: Path
) -> None:
    bucket = Store(s3_bucket)
    # a small corpus on S3: two real domain files
    for domain in ("dialogue", "narrative"):
        bucket.put_file(
            shared_data / "corpus" / domain / "part-00000.jsonl", f"corpus/{domain}/part-00000.jsonl"
        )
    cfg = ProxyConfig(
        **{
            **proxy_run.config.model_dump(),
            "steps": 4,
            "save_every": 2,
            "warmup": 1,
            "max_docs_per_group": 10,
            "tokenizer": str(proxy_run.path / "checkpoint-15"),
        }
    )
    result = train_proxy(cfg, f"{s3_bucket}/corpus", f"{s3_bucket}/runs/p1", progress=False)
    assert result.checkpoint_uris == [
        f"{s3_bucket}/runs/p1/checkpoint-2",
        f"{s3_bucket}/runs/p1/checkpoint-4",
    ]
    assert set(result.group_weights) == {"dialogue", "narrative"}

    found = discover_checkpoints(f"{s3_bucket}/runs/p1")
    assert [(c.step, c.uri) for c in found.checkpoints] == [
        (2, result.checkpoint_uris[0]),
        (4, result.checkpoint_uris[1]),
    ]
    assert found.skipped == []
    again = discover_checkpoints(f"{s3_bucket}/runs/p1")
    assert [c.fingerprint for c in again.checkpoints] == [c.fingerprint for c in found.checkpoints]
    state = json.loads(bucket.read_text("runs/p1/checkpoint-2/trainer_state.json"))
    assert state["global_step"] == 2
    bucket.write_json("runs/p1/checkpoint-2/trainer_state.json", {**state, "note": "rewritten"})
    changed = discover_checkpoints(f"{s3_bucket}/runs/p1")
    assert changed.checkpoints[0].fingerprint != found.checkpoints[0].fingerprint
    assert changed.checkpoints[1].fingerprint == found.checkpoints[1].fingerprint

    model, tok = load_checkpoint(found.checkpoints[-1])
    assert not model.training and len(tok) == model.config.vocab_size

    # a local checkpoint uploaded to S3 loads with identical weights
    uri = bucket.put_dir(proxy_run.path / "checkpoint-30", "copied/checkpoint-30")
    remote, _ = load_checkpoint(discover_checkpoints(uri).checkpoints[0])
    local, _ = load_checkpoint(str(proxy_run.path / "checkpoint-30"))
    for (n1, p1), (n2, p2) in zip(remote.state_dict().items(), local.state_dict().items(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)

    with pytest.raises(CheckpointError, match="empty or does not exist"):
        discover_checkpoints(f"{s3_bucket}/runs/none")
