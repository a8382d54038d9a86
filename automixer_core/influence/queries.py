"""Query vectors w_b per (checkpoint, benchmark) (DESIGN §1.3) and their safetensors files.

v_b = (1/|Q_b|) Σ_{q∈Q_b} ∇_P ℓ_b(q), where ℓ_b(q) = Σ_j −log p(y_j | context, y_<j) is the
summed NLL of the gold continuation y (lm-evaluation-harness' loglikelihood; ``query_loss: sum``),
or that sum divided by the continuation's token count |y| (``query_loss: mean``, so a benchmark
with long answers does not get larger scores and win the argmax grouping by length alone). Orientation: a step θ ← θ − η∇ℓ(x) changes L_b by
−η⟨∇ℓ(x), ∇L_b⟩, so ⟨∇ℓ(x), v_b⟩ > 0 already means "x helps b". Then:

- grad_dot: w_b = v_b;
- datainf: w_b = per-layer Sherman–Morrison (datainf.py);
- adam (any estimator): w_b ← w_b / (√v̂ + ε) (adam.py);
- cosine: w_b ← w_b / ‖w_b‖ (ours: the score ⟨g_x, w_b⟩/‖g_x‖ is then a true cosine, comparable
  across benchmarks, as in LESS).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from automixer_core.errors import InfluenceError
from automixer_core.influence.adam import OptimizerState, adam_denominators
from automixer_core.influence.config import InfluenceConfig
from automixer_core.influence.datainf import datainf_vectors
from automixer_core.influence.hooks import CaptureEngine
from automixer_core.influence.params import ParamBlock, blocks_parameter_fraction, select_blocks
from automixer_core.influence.runner import resolve_window, run_sequences
from automixer_core.influence.windows import Row, batch_rows, query_row

FORMAT_VERSION = "1"
QueryExamples = Sequence[tuple[Sequence[int], Sequence[int]]]


@dataclass
class QueryVectors:
    """The K query vectors of one checkpoint, stacked per parameter block.

    Attributes:
        names: the K query (benchmark) names, in column order.
        blocks: parameter name → [K, *parameter shape] float32 (parameter layout, CPU).
        estimator: "grad_dot", "datainf" or "cosine".
        layers: the layer selection ("embed_head", "all_linear" or a list of patterns).
        adam: whether Adam preconditioning was applied.
        metadata: provenance strings (checkpoint fingerprint, benchmark digests, damping, ...).
    """

    names: list[str]
    blocks: dict[str, torch.Tensor]
    estimator: str
    layers: str | list[str]
    adam: bool = False
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """K, the number of query vectors."""
        return len(self.names)

    def select(self, names: Sequence[str]) -> QueryVectors:
        """The query vectors of a subset of the names, in the given order."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise InfluenceError(f"query vectors {missing} are absent", expected=f"names among {self.names}")
        idx = torch.tensor([self.names.index(n) for n in names], dtype=torch.long)
        return QueryVectors(
            list(names),
            {p: t[idx].contiguous() for p, t in self.blocks.items()},
            self.estimator,
            self.layers,
            self.adam,
            dict(self.metadata),
        )

    @classmethod
    def concat(cls, parts: Sequence[QueryVectors]) -> QueryVectors:
        """Stack query vectors built separately (same estimator, layers and Adam flag) into one K."""
        if not parts:
            raise InfluenceError("no query vectors to stack", expected="at least one QueryVectors")
        first = parts[0]
        for q in parts[1:]:
            if (q.estimator, q.layers, q.adam, sorted(q.blocks)) != (
                first.estimator,
                first.layers,
                first.adam,
                sorted(first.blocks),
            ):
                raise InfluenceError(
                    f"query vectors {q.names} were built with estimator={q.estimator}, layers={q.layers}, adam={q.adam}",
                    expected=f"the same as {first.names}: estimator={first.estimator}, layers={first.layers}, adam={first.adam}",
                    fix="rebuild them with one influence config",
                )
        names = [n for q in parts for n in q.names]
        blocks = {p: torch.cat([q.blocks[p] for q in parts]) for p in first.blocks}
        return cls(names, blocks, first.estimator, first.layers, first.adam, dict(first.metadata))

    def to_bytes(self) -> bytes:
        """Serialize as safetensors: one tensor per parameter block, everything else in metadata."""
        meta = dict(self.metadata)
        meta.update(
            format_version=FORMAT_VERSION,
            names=json.dumps(self.names),
            estimator=self.estimator,
            layers=json.dumps(self.layers),
            adam=json.dumps(self.adam),
        )
        return st_save({p: t.contiguous() for p, t in self.blocks.items()}, metadata=meta)

    @classmethod
    def from_bytes(cls, data: bytes) -> QueryVectors:
        """Inverse of :meth:`to_bytes`."""
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")  # safetensors: u64 header length, JSON header
        meta: dict[str, str] = dict(json.loads(data[8 : 8 + header_len]).get("__metadata__") or {})
        if meta.get("format_version") != FORMAT_VERSION:
            raise InfluenceError(
                f"query-vector file has format_version {meta.get('format_version')!r}",
                expected=f"{FORMAT_VERSION!r}",
                fix="rebuild the query vectors with this version of AutoMixer",
            )
        names = json.loads(meta.pop("names"))
        estimator = meta.pop("estimator")
        layers = json.loads(meta.pop("layers"))
        adam = bool(json.loads(meta.pop("adam")))
        meta.pop("format_version")
        return cls(names, dict(tensors), estimator, layers, adam, meta)

    @staticmethod
    def read_metadata(f: Any) -> dict[str, str]:
        """The metadata of a query-vector file from its header alone (``f``: a binary file object
        at offset 0), without reading the tensors."""
        header_len = int.from_bytes(f.read(8), "little")
        meta: dict[str, str] = dict(json.loads(f.read(header_len)).get("__metadata__") or {})
        return meta

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_bytes` to a local path."""
        with open(path, "wb") as f:
            f.write(self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> QueryVectors:
        """Read a file written by :meth:`save`."""
        with open(path, "rb") as f:
            return cls.from_bytes(f.read())

    def internal(self, blocks: list[ParamBlock], device: torch.device) -> list[torch.Tensor]:
        """Per block, [K, *internal_shape] float32 on ``device``; checks names and shapes."""
        names = [b.name for b in blocks]
        if sorted(names) != sorted(self.blocks):
            raise InfluenceError(
                f"query vectors cover parameters {sorted(self.blocks)}",
                expected=f"the model's selected parameters {sorted(names)}",
                fix="score with the same model architecture and layer selection the queries were built with",
            )
        out = []
        for b in blocks:
            t = self.blocks[b.name]
            if tuple(t.shape) != (self.k, *b.shape):
                raise InfluenceError(
                    f"query block {b.name!r} has shape {tuple(t.shape)}", expected=f"{(self.k, *b.shape)}"
                )
            out.append(b.to_internal(t.to(device, torch.float32)))
        return out


def query_gradients(
    model: nn.Module,
    blocks: list[ParamBlock],
    queries: Mapping[str, QueryExamples],
    config: InfluenceConfig,
    window: int,
) -> list[torch.Tensor]:
    """v_b for every benchmark: per block [K, *internal_shape] float32 on the model's device.

    One stream of forward/backward passes over all benchmarks' examples; each example's
    gradient enters column b with weight 1/|Q_b| (the engine's weighted sums).
    """
    names = list(queries)
    rows: list[Row] = []
    coeff: list[torch.Tensor] = []
    for b, name in enumerate(names):
        examples = queries[name]
        if not examples:
            raise InfluenceError(f"benchmark {name!r} has no query examples", expected="at least one example")
        for ctx, cont in examples:
            seq = len(rows)
            rows.append(query_row(seq, ctx, cont, window))
            c = torch.zeros(len(names))
            per_token = 1.0 / max(1, len(cont)) if config.query_loss == "mean" else 1.0
            c[b] = per_token / len(examples)
            coeff.append(c)
    table = torch.stack(coeff)[:, None, :]  # [n, 1, K]
    with CaptureEngine(
        model,
        blocks,
        n_coeffs=len(names),
        autocast=config.autocast,
        chunk_bytes=config.chunk_bytes,
    ) as eng:
        run_sequences(
            eng,
            batch_rows(([r] for r in rows), config.batch_size),
            len(rows),
            padding_side=config.padding_side,
            coeff_table=table,
        )
        return eng.weighted_sums()


def build_query_vectors(
    model: nn.Module,
    queries: Mapping[str, QueryExamples],
    config: InfluenceConfig,
    *,
    hessian_docs: Iterable[Sequence[int]] | None = None,
    optimizer_state: OptimizerState | None = None,
    optimizer_param_names: Sequence[str] | None = None,
    checkpoint_fingerprint: str = "",
    benchmark_digests: Mapping[str, str] | None = None,
) -> QueryVectors:
    """Build the query vectors w_b of one checkpoint for every benchmark in ``queries``.

    Args:
        model: the checkpoint's causal LM (on the device to use).
        queries: benchmark name → tokenized (context_ids, continuation_ids) pairs (gold answers).
        config: the influence config.
        hessian_docs: token ids of corpus documents (DataInf's Hessian sample; ``datainf`` only).
        optimizer_state: the checkpoint's optimizer state dict or optimizer.pt path (``adam``).
        optimizer_param_names: parameter names in optimizer index order, when the optimizer was
            not built over ``model.parameters()`` in order.
        checkpoint_fingerprint: provenance string stored in the metadata.
        benchmark_digests: benchmark name → data digest, stored in the metadata.

    The metadata also records ``parameter_fraction``: the share of the model's parameters the
    layer selection covers (:func:`~.params.selected_parameter_fraction`).

    Raises:
        InfluenceError: no queries; DataInf without documents; Adam without optimizer state.
        ModelError: the layer selection does not fit the model.
    """
    if not queries:
        raise InfluenceError("no benchmarks given", expected="at least one benchmark's query examples")
    if config.adam and optimizer_state is None:
        raise InfluenceError(
            "Adam preconditioning was asked for but no optimizer state was given",
            expected="the checkpoint's optimizer state (optimizer.pt)",
            fix="pass optimizer_state, or set influence.adam to false for checkpoints without optimizer state",
        )
    if config.estimator == "datainf" and hessian_docs is None:
        raise InfluenceError(
            "estimator datainf needs a Hessian sample but no hessian_docs were given",
            expected=f"about {config.hessian_samples} tokenized corpus documents",
            fix="pass hessian_docs, or use estimator grad_dot",
        )
    blocks = select_blocks(model, config.layers)
    window = resolve_window(model, config.max_length)
    w = query_gradients(model, blocks, queries, config, window)
    meta: dict[str, Any] = {}
    if config.estimator == "datainf":
        assert hessian_docs is not None
        w, stats = datainf_vectors(model, blocks, w, hessian_docs, config, window)
        meta.update(hessian_n=str(stats.n), lambdas=json.dumps(stats.lambdas), damping=repr(config.damping))
    if config.adam:
        assert optimizer_state is not None
        denoms = adam_denominators(model, blocks, optimizer_state, optimizer_param_names)
        w = [wl / dl.to(wl.device)[None] for wl, dl in zip(w, denoms, strict=True)]
    if config.estimator == "cosine":
        norm = torch.sqrt(
            sum(
                (wl.double().flatten(1).square().sum(1) for wl in w),
                torch.zeros(len(queries), dtype=torch.float64, device=w[0].device),
            )
        )
        w = [(wl.double() / norm.clamp_min(1e-300).view(-1, *([1] * (wl.dim() - 1)))).float() for wl in w]
    digests = dict(benchmark_digests or {})
    meta.update(
        checkpoint_fingerprint=checkpoint_fingerprint,
        benchmark_digests=json.dumps({n: digests.get(n, "") for n in queries}, sort_keys=True),
        window=str(window),
        n_examples=json.dumps({n: len(q) for n, q in queries.items()}),
        parameter_fraction=repr(blocks_parameter_fraction(model, blocks)),
    )
    return QueryVectors(
        names=list(queries),
        blocks={b.name: b.to_param(wl.cpu()) for b, wl in zip(blocks, w, strict=True)},
        estimator=config.estimator,
        layers=config.layers,
        adam=config.adam,
        metadata={k: str(v) for k, v in meta.items()},
    )
