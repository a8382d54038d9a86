"""Training a proxy LM from scratch on a corpus, saving Hugging Face checkpoints as it goes.

The run: read the corpus by group → train a byte-level BPE tokenizer on a sample (or load one)
→ tokenize → sample packed rows by group weight → AdamW with linear warm-up and cosine decay,
fp32 → every ``save_every`` steps (and at the end) write ``checkpoint-<step>/`` to the output URI:

- ``config.json``, ``model.safetensors``, ``generation_config.json`` (``save_pretrained``)
- ``tokenizer.json``, ``tokenizer_config.json``, ... (``save_pretrained``)
- ``optimizer.pt``: ``torch.save`` of ``AdamW.state_dict()``. ``state[i]`` holds ``exp_avg`` and
  ``exp_avg_sq`` (same shape as parameter i) and ``step``; each ``param_groups[j]`` lists the
  parameter indices in ``params`` and, aligned with them, their names in ``param_names``
  (``model.named_parameters()`` names; with tied embeddings the head shares
  ``model.embed_tokens.weight``).
- ``scheduler.pt``: ``LambdaLR.state_dict()``.
- ``trainer_state.json``: ``global_step``, ``max_steps``, ``tokens_seen``, ``seed``,
  ``group_weights`` (normalised), ``group_weights_source``, ``group_tokens`` (tokens drawn per
  group so far), ``loss_history`` (one float per step), ``log_history`` (HF style), ``config``.

Files are written to a local temporary folder and then uploaded through :class:`Store`, one by
one (each atomic) with ``config.json`` last, so a reader that sees ``config.json`` sees a
complete checkpoint. A ``proxy_run.json`` summary is written at the output root at the end.

Deterministic on CPU: the same config, corpus and thread count give bit-identical weights.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from automixer_core import __version__
from automixer_core.checkpoints import quiet_transformers_progress
from automixer_core.errors import ConfigError, StorageError
from automixer_core.proxy.config import ProxyConfig
from automixer_core.proxy.data import (
    MixtureSampler,
    read_groups,
    read_membership,
    resolve_group_weights,
    tokenize_texts,
    tokenizer_sample,
)
from automixer_core.store import Store
from automixer_core.tokenizer import train_bpe_tokenizer

logger = logging.getLogger(__name__)

RUN_SUMMARY_FILE = "proxy_run.json"


@dataclass(frozen=True)
class SavedCheckpoint:
    """One checkpoint a proxy run wrote: its step, URI, tokens seen so far and that step's loss (nats/token)."""

    step: int
    uri: str
    tokens_seen: int
    loss: float


@dataclass
class ProxyRunResult:
    """What :func:`train_proxy` did.

    Attributes:
        output_uri: the run folder.
        checkpoints: the checkpoints written, by step.
        losses: training loss (mean next-token cross-entropy, nats/token) at each step 1..steps.
        tokens_seen: training tokens consumed (steps × batch_size × seq_len).
        group_weights: the normalised sampling weights used.
        group_tokens: training tokens drawn from each group.
        num_params: model parameters (tied embeddings counted once).
        vocab_size: the tokenizer's vocabulary size (= the model's).
        train_seconds: wall time of the training loop (saving included).
        tokens_per_second: tokens_seen / train_seconds.
    """

    output_uri: str
    checkpoints: list[SavedCheckpoint]
    losses: list[float]
    tokens_seen: int
    group_weights: dict[str, float]
    group_tokens: dict[str, int]
    num_params: int
    vocab_size: int
    train_seconds: float
    tokens_per_second: float
    setup_seconds: float = 0.0

    @property
    def final_loss(self) -> float:
        return self.losses[-1]

    @property
    def checkpoint_uris(self) -> list[str]:
        return [c.uri for c in self.checkpoints]


# --- model and optimisation ------------------------------------------------------------------------


def lr_factor(step: int, config: ProxyConfig) -> float:
    """Multiplier of ``config.lr`` for update ``step`` (0-based: the first update is step 0).

    - warm-up, ``step < warmup``: ``(step + 1) / warmup``
    - then, with ``p = (step - warmup) / max(1, steps - warmup)`` in [0, 1):
      ``min_lr_ratio + (1 - min_lr_ratio) · (1 + cos(π p)) / 2``
    """
    if step < config.warmup:
        return (step + 1) / config.warmup
    progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    r = config.min_lr_ratio
    return r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_at(step: int, config: ProxyConfig) -> float:
    """The learning rate of update ``step`` (0-based): ``config.lr × lr_factor(step, config)``."""
    return config.lr * lr_factor(step, config)


def build_model(config: ProxyConfig, vocab_size: int, eos_id: int) -> LlamaForCausalLM:
    """A freshly initialised fp32 Llama of the configured size (initialised from ``config.seed``).

    The global torch RNG is left as it was.
    """
    llama = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden,
        intermediate_size=config.mlp_width,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=max(config.seq_len, config.max_positions),
        tie_word_embeddings=config.tie_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = LlamaForCausalLM(llama)
    return model.float()


def build_optimizer(model: torch.nn.Module, config: ProxyConfig) -> torch.optim.AdamW:
    """AdamW over named parameters: weight decay on matrices (≥ 2 dims), none on norms and biases.

    The state dict then carries ``param_names`` in each param group.
    """
    decay = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    groups: list[dict[str, Any]] = [{"params": decay, "weight_decay": config.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.AdamW(
        groups, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps, foreach=False
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: ProxyConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay; call ``step()`` after each optimizer update."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))


# --- helpers -------------------------------------------------------------------------------------


def default_num_threads(config: ProxyConfig) -> int:
    """CPU threads for a run: ``config.num_threads``, else one per 128 of model width, at most the cores.

    Small matmuls gain little from threads and lose a lot when the cores are shared: on a busy
    2-core machine a d=64 model trained 10× slower on 2 threads than on 1, and d=128 (4 layers,
    vocab 4096) 2.7× slower (1.2K vs 3.2K tokens/s). Set ``num_threads`` on an idle machine.
    """
    if config.num_threads is not None:
        return config.num_threads
    return max(1, min(os.cpu_count() or 1, config.hidden // 128))


@contextmanager
def _num_threads(n: int) -> Iterator[None]:
    prev = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _load_tokenizer(uri: str) -> PreTrainedTokenizerBase:
    try:
        folder = Store(uri).local_dir("")
        tok = AutoTokenizer.from_pretrained(str(folder))
    except (StorageError, OSError, ValueError) as exc:
        raise ConfigError(
            f"Cannot load the tokenizer at {uri!r}: {exc}",
            fix="set tokenizer to a folder written by tokenizer.save_pretrained, or to None to train one",
        ) from exc
    if tok.eos_token_id is None:
        raise ConfigError(
            f"The tokenizer at {uri!r} has no EOS token", fix="use a tokenizer with an eos_token"
        )
    return tok


def proxy_texts(config: ProxyConfig, corpus_uri: str) -> dict[str, list[str]]:
    """The corpus documents a proxy run with ``config`` trains on, by group (by the groups of
    ``config.group_membership`` where set)."""
    membership = None
    if config.group_membership is not None:
        membership = read_membership(config.group_membership, config.membership_column)
    return read_groups(
        corpus_uri,
        text_field=config.text_field,
        id_field=config.id_field,
        group_field=config.group_field,
        max_docs_per_group=config.max_docs_per_group,
        max_docs=config.max_docs,
        membership=membership,
    )


def proxy_tokenizer(config: ProxyConfig, texts: dict[str, list[str]]) -> PreTrainedTokenizerBase:
    """``config.tokenizer`` loaded, or a BPE tokenizer trained on a sample spread over the groups."""
    if config.tokenizer is not None:
        return _load_tokenizer(config.tokenizer)
    sample = tokenizer_sample(texts, config.tokenizer_docs, config.tokenizer_max_chars)
    return train_bpe_tokenizer(sample, vocab_size=config.vocab_size)


def _prepare_output(store: Store, overwrite: bool) -> None:
    existing = store.list("")
    if not existing:
        return
    if not overwrite:
        raise ConfigError(
            f"Output {store.root!r} is not empty ({len(existing)} files, e.g. {existing[0]!r})",
            fix="choose a new output URI, or pass overwrite=True to replace the run there",
        )
    for key in store.list("", recursive=False):
        name = key.rstrip("/")
        if name.startswith("checkpoint-") or name == RUN_SUMMARY_FILE:
            store.delete(name)


def _upload_checkpoint(store: Store, local: Path, key: str) -> str:
    """Upload every file of ``local`` under ``key``, config.json last (it marks the checkpoint complete)."""
    files = sorted(
        (p for p in local.rglob("*") if p.is_file()), key=lambda p: (p.name == "config.json", str(p))
    )
    for f in files:
        store.put_file(f, f"{key}/{f.relative_to(local).as_posix()}")
    return store.uri(key)


# --- the run -------------------------------------------------------------------------------------


def train_proxy(
    config: ProxyConfig,
    corpus_uri: str,
    output_uri: str,
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> ProxyRunResult:
    """Train a proxy LM on the corpus at ``corpus_uri`` and save checkpoints under ``output_uri``.

    Args:
        config: model size, optimisation, data and checkpoint settings.
        corpus_uri: a folder, file or fsspec prefix of jsonl/jsonl.gz/parquet documents.
        output_uri: the run folder (local or any fsspec URI); gets ``checkpoint-<step>/`` folders.
        progress: show a rich progress bar with loss and tokens/s.
        overwrite: replace the checkpoints of an earlier run at ``output_uri`` (else that is an error).

    Returns:
        the checkpoints written, the loss per step, throughput and the mixture used.

    Raises:
        CorpusError: the corpus is empty or malformed.
        ConfigError: bad group weights; output not empty; tokenizer unusable.
    """
    t0 = time.perf_counter()
    out = Store(output_uri)
    _prepare_output(out, overwrite)

    texts = proxy_texts(config, corpus_uri)
    weights = resolve_group_weights(config.group_weights, texts)
    weights_source = (
        config.group_weights
        if isinstance(config.group_weights, str)
        else ("config" if config.group_weights is not None else "uniform")
    )
    logger.info("Proxy corpus %s: %s", corpus_uri, {g: len(t) for g, t in texts.items()})

    tokenizer = proxy_tokenizer(config, texts)
    eos_id = int(tokenizer.eos_token_id)
    vocab = len(tokenizer)

    with _num_threads(default_num_threads(config)), quiet_transformers_progress():
        tokens = {g: tokenize_texts(texts[g], tokenizer) for g in texts if weights[g] > 0}
        del texts
        sampler = MixtureSampler(tokens, weights, config.seq_len, eos_id, config.seed)

        device = torch.device(config.device)
        model = build_model(config, vocab, eos_id)
        model.to(device)  # type: ignore[arg-type]  # transformers' wrapped .to confuses mypy
        model.train()
        optimizer = build_optimizer(model, config)
        scheduler = build_scheduler(optimizer, config)
        num_params = sum(p.numel() for p in model.parameters())
        setup_seconds = time.perf_counter() - t0

        losses: list[float] = []
        log_history: list[dict[str, Any]] = []
        saved: list[SavedCheckpoint] = []
        tokens_seen = 0
        t_train = time.perf_counter()
        bar_ctx: Any = _progress_bar(config.steps) if progress else nullcontext(None)
        with tempfile.TemporaryDirectory(prefix="automixer-proxy-") as tmp, bar_ctx as bar:
            task = bar.add_task("proxy", total=config.steps, loss=float("nan"), tps=0.0) if bar else None
            for step in range(1, config.steps + 1):
                lr = optimizer.param_groups[0]["lr"]
                batch, _ = sampler.next_batch(config.batch_size)
                batch = batch.to(device)
                loss = model(input_ids=batch, labels=batch).loss
                loss.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)

                value = float(loss.detach())
                losses.append(value)
                tokens_seen += batch.numel()
                log_history.append(
                    {"step": step, "loss": value, "learning_rate": lr, "tokens_seen": tokens_seen}
                )
                if bar is not None:
                    elapsed = time.perf_counter() - t_train
                    bar.update(task, advance=1, loss=value, tps=tokens_seen / max(elapsed, 1e-9))
                if step % config.save_every == 0 or step == config.steps:
                    state = {
                        "global_step": step,
                        "max_steps": config.steps,
                        "tokens_seen": tokens_seen,
                        "seed": config.seed,
                        "group_weights": weights,
                        "group_weights_source": weights_source,
                        "group_tokens": sampler.tokens_per_group,
                        "loss_history": list(losses),
                        "log_history": list(log_history),
                        "corpus_uri": str(corpus_uri),
                        "config": config.model_dump(),
                        "automixer_version": __version__,
                    }
                    uri = _save_checkpoint(
                        out, Path(tmp), step, model, tokenizer, optimizer, scheduler, state, config
                    )
                    saved.append(SavedCheckpoint(step=step, uri=uri, tokens_seen=tokens_seen, loss=value))
                    logger.info("Saved %s (loss %.4f)", uri, value)
        train_seconds = time.perf_counter() - t_train

    result = ProxyRunResult(
        output_uri=out.root,
        checkpoints=saved,
        losses=losses,
        tokens_seen=tokens_seen,
        group_weights=weights,
        group_tokens=sampler.tokens_per_group,
        num_params=num_params,
        vocab_size=vocab,
        train_seconds=train_seconds,
        tokens_per_second=tokens_seen / max(train_seconds, 1e-9),
        setup_seconds=setup_seconds,
    )
    summary = asdict(result)
    summary.pop("losses")
    summary.update(config=config.model_dump(), corpus_uri=str(corpus_uri), automixer_version=__version__)
    out.write_json(RUN_SUMMARY_FILE, summary)
    return result


def _save_checkpoint(
    out: Store,
    tmp: Path,
    step: int,
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerBase,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: dict[str, Any],
    config: ProxyConfig,
) -> str:
    import json

    name = f"checkpoint-{step}"
    local = tmp / name
    local.mkdir(parents=True)
    model.save_pretrained(local)
    tokenizer.save_pretrained(local)
    if config.save_optimizer:
        torch.save(optimizer.state_dict(), local / "optimizer.pt")
    torch.save(scheduler.state_dict(), local / "scheduler.pt")
    (local / "trainer_state.json").write_text(json.dumps(state, indent=1, default=str) + "\n")
    try:
        return _upload_checkpoint(out, local, name)
    finally:
        shutil.rmtree(local, ignore_errors=True)


def _progress_bar(total: int) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]proxy"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TextColumn("{task.fields[tps]:,.0f} tok/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
