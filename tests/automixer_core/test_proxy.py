"""Proxy training: config, LR schedule, packing, sampling by group weight, determinism, checkpoints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from automixer_core.errors import ConfigError
from automixer_core.proxy import (
    MixtureSampler,
    PackedStream,
    ProxyConfig,
    build_model,
    build_optimizer,
    build_scheduler,
    load_mixture_weights,
    lr_at,
    resolve_group_weights,
    train_proxy,
)
from tests.fixtures_proxy import ProxyRun

DOMAINS = ["code", "dialogue", "drama", "encyclopedia", "howto", "math", "narrative", "science_qa", "social"]


def _within(share: float, weight: float, n: int, sigmas: float = 4.0) -> bool:
    """|share − weight| within ``sigmas`` binomial standard deviations for n draws."""
    return abs(share - weight) <= sigmas * math.sqrt(weight * (1 - weight) / n)


# --- config --------------------------------------------------------------------------------------


def test_config_rejects_bad_values_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="hidden=64 is not divisible by heads=3"):
        ProxyConfig(hidden=64, heads=3)
    with pytest.raises(ValidationError, match="heads=4 is not divisible by kv_heads=3"):
        ProxyConfig(hidden=64, heads=4, kv_heads=3)
    with pytest.raises(ValidationError, match="warmup=50 exceeds steps=10"):
        ProxyConfig(steps=10, warmup=50)
    with pytest.raises(ValidationError, match="negative weights"):
        ProxyConfig(group_weights={"a": -1.0, "b": 2.0})
    with pytest.raises(ValidationError, match="hiden"):
        ProxyConfig(hiden=64)  # type: ignore[call-arg]
    cfg = ProxyConfig(hidden=96, heads=6)
    assert cfg.num_kv_heads == 6 and cfg.mlp_width == 384 and cfg.tokens_per_step == 16 * 256


# --- LR schedule ---------------------------------------------------------------------------------


def test_lr_schedule_matches_formula_and_optimizer() -> None:
    cfg = ProxyConfig(hidden=16, layers=1, heads=2, steps=100, warmup=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)  # (0+1)/10 of the peak
    assert lr_at(4, cfg) == pytest.approx(5e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)  # warm-up ends at the peak
    assert lr_at(10, cfg) == pytest.approx(1e-3)  # cosine starts at the peak
    assert lr_at(55, cfg) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # half way: p = 45/90
    p = 89 / 90
    assert lr_at(99, cfg) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))))
    assert lr_at(200, cfg) == pytest.approx(1e-4)  # past the end: the floor

    model = build_model(cfg, vocab_size=300, eos_id=0)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg)
    used = []
    for _ in range(cfg.steps):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert used == pytest.approx([lr_at(s, cfg) for s in range(cfg.steps)], rel=1e-12)
    assert {g["lr"] for g in opt.param_groups} == {opt.param_groups[0]["lr"]}  # decay/no-decay alike


def test_proxy_run_used_the_schedule(proxy_run: ProxyRun) -> None:
    state = json.loads((proxy_run.checkpoints[-1] / "trainer_state.json").read_text())
    lrs = [e["learning_rate"] for e in state["log_history"]]
    assert lrs == pytest.approx([lr_at(s, proxy_run.config) for s in range(proxy_run.config.steps)])


# --- packing -------------------------------------------------------------------------------------


def _docs(n: int, seed: int, lo: int = 1, hi: int = 50) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 100, size=int(rng.integers(lo, hi))).astype(np.int32) for _ in range(n)]


def test_packing_is_the_concatenation_of_documents_and_eos() -> None:
    docs = _docs(12, seed=1)
    stream = PackedStream(docs, seq_len=16, eos_id=0)
    epoch_tokens = sum(len(d) + 1 for d in docs)
    n_rows = 3 * epoch_tokens // 16 + 2  # a little more than three epochs
    rows = [stream.next_row() for _ in range(n_rows)]
    assert all(r.shape == (16,) and r.dtype == np.int64 for r in rows)
    oracle = np.concatenate([np.concatenate([d, [0]]) for d in docs] * 4)
    assert np.array_equal(np.concatenate(rows), oracle[: 16 * n_rows])


def test_shuffled_packing_follows_each_epochs_order() -> None:
    docs = _docs(9, seed=2)
    stream = PackedStream(docs, seq_len=32, eos_id=0, rng=np.random.default_rng(0), record_order=True)
    rows = np.concatenate([stream.next_row() for _ in range(40)])
    assert stream.epoch >= 3
    orders = stream.epoch_orders
    assert all(sorted(o) == list(range(9)) for o in orders)
    assert orders[0] != orders[1]  # a fresh order every epoch
    oracle = np.concatenate([np.concatenate([docs[i], [0]]) for o in orders for i in o])
    assert np.array_equal(rows, oracle[: len(rows)])


# --- sampling ------------------------------------------------------------------------------------


def test_rows_are_drawn_in_proportion_to_group_weights() -> None:
    # each group uses its own token range so that a row's group can be read off its tokens
    groups = {
        g: [d + 100 * k for d in _docs(20, seed=k, hi=80)]
        for k, g in enumerate(["a", "b", "c", "d"], start=1)
    }
    weights = {"a": 0.5, "b": 0.3, "c": 0.2, "d": 0.0}
    sampler = MixtureSampler(groups, weights, seq_len=32, eos_id=0, seed=7)
    counts = {g: 0 for g in groups}
    n = 0
    for _ in range(250):
        batch, names = sampler.next_batch(16)
        assert batch.shape == (16, 32) and batch.dtype == torch.int64
        for row, g in zip(batch, names, strict=True):
            k = "abcd".index(g) + 1
            non_eos = row[row != 0]
            assert bool(((non_eos >= 100 * k) & (non_eos < 100 * k + 100)).all())  # one group per row
            counts[g] += 1
            n += 1
    # tolerance: 4 binomial standard deviations (n = 4000 rows: ±0.032 for w = 0.5)
    for g, w in weights.items():
        assert _within(counts[g] / n, w, n), (g, counts[g] / n, w)
    assert counts["d"] == 0
    assert sampler.tokens_per_group == {"a": counts["a"] * 32, "b": counts["b"] * 32, "c": counts["c"] * 32}


def test_sampler_is_deterministic_given_the_seed() -> None:
    groups = {"a": _docs(10, 1), "b": _docs(10, 2)}
    w = {"a": 0.5, "b": 0.5}
    one = [MixtureSampler(groups, w, 16, 0, seed=3).next_batch(8)[0] for _ in range(2)]
    assert torch.equal(one[0], one[1])
    other = MixtureSampler(groups, w, 16, 0, seed=4).next_batch(8)[0]
    assert not torch.equal(one[0], other)
    with pytest.raises(ConfigError, match=r"Groups \['b'\] have a positive weight but no documents"):
        MixtureSampler({"a": groups["a"], "b": []}, w, 16, 0, seed=0)


def test_proxy_run_token_shares_match_uniform_weights(proxy_run: ProxyRun) -> None:
    state = json.loads((proxy_run.checkpoints[-1] / "trainer_state.json").read_text())
    assert state["group_weights"] == pytest.approx({d: 1 / 9 for d in DOMAINS})
    assert state["group_weights_source"] == "uniform"
    tokens = state["group_tokens"]
    total = sum(tokens.values())
    assert total == state["tokens_seen"] == 100 * 16 * 128
    n_rows = total // 128
    for d in DOMAINS:
        assert _within(tokens[d] / total, 1 / 9, n_rows), (d, tokens[d] / total)


# --- group weights -------------------------------------------------------------------------------


def test_group_weights_from_dict_and_mixture_file(tmp_path: Path) -> None:
    groups = ["a", "b", "c"]
    assert resolve_group_weights(None, groups) == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert resolve_group_weights({"a": 3, "b": 1}, groups) == {"a": 0.75, "b": 0.25, "c": 0.0}
    with pytest.raises(ConfigError, match=r"names group\(s\) \['z'\] that the corpus does not have"):
        resolve_group_weights({"a": 1, "z": 1}, groups)

    mixture = tmp_path / "mixture.json"
    mixture.write_text(
        json.dumps(
            {
                "mixture_id": "m1",
                "groups": [{"name": "b", "weight": 0.2, "tokens": 9}, {"name": "c", "weight": 0.6}],
            }
        )
    )
    assert load_mixture_weights(str(mixture)) == {"b": 0.2, "c": 0.6}
    assert resolve_group_weights(str(mixture), groups) == pytest.approx({"a": 0.0, "b": 0.25, "c": 0.75})

    (tmp_path / "bad.json").write_text(json.dumps({"groups": [{"label": "b"}]}))
    with pytest.raises(ConfigError, match="has no usable group weights"):
        load_mixture_weights(str(tmp_path / "bad.json"))
    with pytest.raises(ConfigError, match="Cannot read the mixture file"):
        load_mixture_weights(str(tmp_path / "absent.json"))


# --- whole runs ----------------------------------------------------------------------------------


def _tiny(seed: int, mixture: str) -> ProxyConfig:
    return ProxyConfig(
        hidden=32,
        layers=1,
        heads=2,
        kv_heads=1,
        intermediate=64,
        vocab_size=512,
        seq_len=64,
        batch_size=8,
        steps=6,
        warmup=2,
        lr=3e-3,
        save_every=3,
        max_docs_per_group=8,
        tokenizer_docs=40,
        tokenizer_max_chars=2000,
        group_weights=mixture,
        seed=seed,
        num_threads=1,
    )


def test_same_seed_same_weights_and_mixture_file_is_used(shared_data: Path, tmp_path: Path) -> None:
    corpus = str(shared_data / "corpus")
    mixture = tmp_path / "mixture.json"
    mixture.write_text(
        json.dumps({"groups": [{"name": "math", "weight": 3}, {"name": "drama", "weight": 1}]})
    )
    runs = {}
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        runs[name] = train_proxy(
            _tiny(seed, str(mixture)), corpus, str(tmp_path / name), progress=name == "a"
        )

    def files(run: str, f: str) -> bytes:
        return (tmp_path / run / "checkpoint-6" / f).read_bytes()

    assert files("a", "model.safetensors") == files("b", "model.safetensors")  # bit-identical weights
    assert files("a", "tokenizer.json") == files("b", "tokenizer.json")
    assert runs["a"].losses == runs["b"].losses
    opt_a = torch.load(tmp_path / "a" / "checkpoint-6" / "optimizer.pt")
    opt_b = torch.load(tmp_path / "b" / "checkpoint-6" / "optimizer.pt")
    assert all(
        torch.equal(opt_a["state"][i]["exp_avg_sq"], opt_b["state"][i]["exp_avg_sq"]) for i in opt_a["state"]
    )
    assert files("a", "model.safetensors") != files("c", "model.safetensors")  # another seed

    state = json.loads(files("a", "trainer_state.json"))
    assert state["group_weights"]["math"] == pytest.approx(0.75)
    assert state["group_weights"]["drama"] == pytest.approx(0.25)
    assert state["group_weights_source"] == str(mixture)
    assert {g for g, t in state["group_tokens"].items() if t > 0} <= {"math", "drama"}
    assert sum(state["group_tokens"].values()) == 6 * 8 * 64

    with pytest.raises(ConfigError, match="is not empty"):
        train_proxy(_tiny(0, str(mixture)), corpus, str(tmp_path / "a"), progress=False)
    again = train_proxy(_tiny(0, str(mixture)), corpus, str(tmp_path / "a"), progress=False, overwrite=True)
    assert again.losses == runs["a"].losses


def test_loss_decreases_on_the_real_corpus(proxy_run: ProxyRun) -> None:
    losses = proxy_run.result.losses
    assert len(losses) == proxy_run.config.steps
    assert losses[0] == pytest.approx(math.log(proxy_run.result.vocab_size), abs=0.3)  # untrained ≈ uniform
    first, last = float(np.mean(losses[:10])), float(np.mean(losses[-10:]))
    assert last < first - 1.0, (first, last)
    ckpt_losses = [c.loss for c in proxy_run.result.checkpoints]
    assert ckpt_losses[-1] < ckpt_losses[0]


def test_checkpoints_hold_model_tokenizer_optimizer_and_state(proxy_run: ProxyRun) -> None:
    cfg = proxy_run.config
    result = proxy_run.result
    assert [c.step for c in result.checkpoints] == [15, 30, 45, 60, 75, 90, 100]
    summary = json.loads((proxy_run.path / "proxy_run.json").read_text())
    assert [c["step"] for c in summary["checkpoints"]] == [15, 30, 45, 60, 75, 90, 100]
    model = build_model(cfg, result.vocab_size, eos_id=0)
    names = [n for n, _ in model.named_parameters()]
    shapes = dict((n, p.shape) for n, p in model.named_parameters())
    for ckpt in result.checkpoints:
        folder = Path(ckpt.uri)
        for f in ("config.json", "model.safetensors", "tokenizer.json", "optimizer.pt", "scheduler.pt"):
            assert (folder / f).is_file(), (folder, f)
        state = json.loads((folder / "trainer_state.json").read_text())
        assert state["global_step"] == ckpt.step
        assert state["tokens_seen"] == ckpt.tokens_seen == ckpt.step * cfg.batch_size * cfg.seq_len
        assert state["seed"] == cfg.seed
        assert state["loss_history"] == result.losses[: ckpt.step]
        assert torch.load(folder / "scheduler.pt")["last_epoch"] == ckpt.step

    opt = torch.load(Path(result.checkpoints[-1].uri) / "optimizer.pt")
    saved_names = [n for g in opt["param_groups"] for n in g["param_names"]]
    ids = [i for g in opt["param_groups"] for i in g["params"]]
    assert sorted(saved_names) == sorted(names)
    for name, i in zip(saved_names, ids, strict=True):
        s = opt["state"][i]
        assert s["exp_avg_sq"].shape == shapes[name]
        assert float(s["exp_avg_sq"].min()) >= 0.0 and float(s["exp_avg_sq"].max()) > 0.0
        assert int(s["step"]) == cfg.steps
    decay = {g["weight_decay"]: g["param_names"] for g in opt["param_groups"]}
    assert all("norm" in n for n in decay[0.0]) and "model.embed_tokens.weight" in decay[cfg.weight_decay]
    assert result.tokens_per_second > 0 and result.num_params == sum(p.numel() for p in model.parameters())
