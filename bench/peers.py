"""Our influence engine against maintained peers (EleutherAI's ``bergson``, ``kronfluence``) on the same inputs.

One command builds one small seeded Llama (the proxy's architecture, trained a few steps on real
text so its logits are not uniform), one set of real corpus documents (cut to ``--seq`` tokens)
and the benchmark queries (the gradient of the gold answers' NLL, context + answer cut to the
model's 512 positions for everyone), then scores the documents against the queries with our
engine (this venv) and with each peer (its own venv, a driver in a subprocess kept alive across
repetitions; inputs travel as JSON, scores as .npy), repetitions interleaved, the same thread
count, fp32 everywhere. It prints one table: tool, settings, tokens/s (wall and process CPU time,
best of ``--reps``), our speed-up, and the Pearson and Spearman correlation of each peer's scores
with ours (per query column, the lowest over columns).

    .venv/bin/python bench/peers.py --model d128 --docs 256 --seq 128     # builds the peer venvs once

The ``(floor)`` row is a plain autograd forward + backward of the same batches with every weight
frozen but the input embedding (what bergson's pass runs, without its hooks): no one-pass scorer
can beat it by much, so it bounds every speed-up in the table.

The peers are never dependencies of this project: ``--setup`` (or the first run) creates
``.bench-envs/<peer>`` with the same CPU torch as ``.venv`` (installed first, then pinned by a
constraint file so pip can never swap in a CUDA build), the peer with ``--no-deps`` and its
pure-Python dependencies by hand (bergson's metadata also requires torchvision, torchaudio and
bitsandbytes, kronfluence's torchvision; their gradient and scoring code never imports them).

What bergson computes (read from bergson 2.5.1's source: ``collector/collector.py``,
``gradients.py``, ``score/scorer.py``, ``score/score.py``, ``builder.py``, ``config/config.py``):

- Model: ``setup_model_and_peft`` freezes every weight except the input embedding (so the
  backward computes activation gradients and one embedding scatter, no linear weight gradients).
  Hooks go on every ``nn.Linear``/``Conv1D`` of ``model.base_model`` (for a Llama: q/k/v/o and
  gate/up/down of every layer; not the LM head, not the embedding), weights only
  (``include_bias=False``). Our side selects exactly these modules by name pattern.
- Per-document gradient of module W: the forward hook keeps the input a [N,S,I], the backward
  hook (``register_full_backward_hook``) gets δ [N,S,O]; per document it *materialises* δᵀa
  [N,O,I] (``OuterProductGradients``, ``g.mT @ a``) and the scorer contracts it with the query,
  one GEMM per module ([N, O·I] @ [O·I, K]) — the structure of our K ≥ 2 path.
- Loss: ``loss_reduction`` ``sum`` (default: summed token NLL of the document) or ``mean``
  (divided by the document's predicted-token count: our ℓ). No attention mask; right padding with
  label −100, which causal attention makes harmless.
- Projection: ``projection_dim`` 0 (the ``build``/``score`` default) keeps full gradients;
  p > 0 multiplies δ by a [p,O] and a by a [p,I] seeded Rademacher matrix scaled 1/√p before
  the outer product (per-module, two-sided; TrackStar's default p = 16), so each module's
  gradient becomes p×p and the scores become a random-projection (JL) estimate.
- Normalisation: none by default. ``unit_normalize`` divides every index gradient by its norm
  (over all modules) and each query-example gradient by its norm *before* aggregation (so the
  query is the mean of unit vectors, unlike our ``cosine``, which normalises the mean);
  ``normalize_aggregated_grad`` rescales the aggregated query to unit norm.
- Preconditioning: none by default. ``optimizer_state`` loads Adam/Adafactor second moments and
  divides *both* the document and the query gradients elementwise by √v + 1e-8 (Adam) or a
  rank-one Adafactor factor, so the score is Σ g·q / (√v+ε)² — our ``adam`` divides the query
  once (Σ g·q / (√v̂+ε), LESS). ``hessian_path`` applies H⁻¹ (or H^(−1/2) on both sides with
  unit_normalize) from an autocorrelation/EK-FAC Hessian.
- Query: ``build`` of the query set with labels −100 on the context (prompt/completion columns),
  ``aggregation`` ``mean`` over questions (default ``none``: one column per question, whose mean
  is the same number by linearity), then ``score`` streams the corpus through the collector
  with a ``Scorer`` (score mode ``individual``, precision fp32). The driver calls these pieces
  (``InMemoryCollector``, ``collect_gradients`` with a ``Scorer``) in-process, as ``score_worker``
  does, without the CLI's model loading and distributed launch.

What kronfluence 1.0.1 computes (``analyzer.py``, ``module/linear.py``, ``factor/config.py``,
``arguments.py``): ``prepare_model`` freezes every weight and wraps the tracked ``nn.Linear``
modules; the loss and the measurement are whatever the user's ``Task`` returns (here: Σ over
documents of each document's mean token NLL, and the gold continuations' summed NLL), so
reduction is the user's choice. Per-sample gradients are δᵀa einsums (or contracted with the
stored query gradient along an opt_einsum path); ``compute_pairwise_scores`` gives
⟨P q, g_x⟩ per (query, document), P from the factor strategy: ``identity`` (none), ``diagonal``,
``kfac``, ``ekfac`` (its default: eigendecomposed Kronecker factors E[aaᵀ], E[δδᵀ] with corrected
eigenvalues, damping ``damping_factor`` = 1e-8 by default). No projection (only an optional
low-rank SVD of query gradients), no normalisation. ``aggregate_query_gradients`` sums the query
gradients (K = 1 here, divided by |Q|); for K > 1 the driver keeps its per-example query
gradients (its default) in one pass and averages the columns of each benchmark.

Settings compared (``--configs``):

- ``exact`` (bergson): projection off, ``loss_reduction=mean`` for documents and ``sum`` for the
  query's gold continuation, no normalisation or preconditioner, the same batches
  (``token_batch_size`` = batch × seq, ``max_batch_size`` = batch). The scores are then the same
  quantity as ours, ⟨∇ℓ(x), (1/|Q|) Σ_q ∇ NLL(gold_q)⟩ over the same weights: they agree to
  fp32 rounding.
- ``defaults`` (bergson): its ``IndexConfig`` defaults (``loss_reduction=sum``,
  ``token_batch_size`` 2048, no projection): a document's score is ours times its predicted-token
  count, so with documents of unequal length the correlation drops below 1 by that factor alone
  (the bench prints the correlation after that rescaling too).
- ``proj16`` (bergson): as ``exact`` with ``projection_dim=16`` (TrackStar's default).
- ``kf-identity`` (kronfluence): the same quantity as ``exact``; documents in descending length,
  batches of ``--batch`` (as ours).
- ``kf-ekfac`` (kronfluence): its default EK-FAC influence (factors fitted on the scored
  documents, timed apart): a different estimator, shown for its speed.

Timing covers gradient collection plus scoring of the documents (bergson's query, built once per
setting, and kronfluence's factor fit are timed apart; kronfluence's query gradient is part of
its ``compute_pairwise_scores`` and so of its time). Clocks: wall (``perf_counter``) and the
scoring process's CPU time (``process_time``, robust to other load on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from automixer_core.benchmarks import BenchmarkSpec, load_benchmark  # noqa: E402
from automixer_core.corpus import iter_documents  # noqa: E402
from automixer_core.evaluation import gold_pairs  # noqa: E402
from automixer_core.influence import InfluenceConfig, build_query_vectors, score_documents  # noqa: E402
from automixer_core.proxy import ProxyConfig  # noqa: E402
from automixer_core.proxy.train import build_model  # noqa: E402
from automixer_core.tokenizer import train_bpe_tokenizer  # noqa: E402

SIZES = {"d64": 64, "d128": 128, "d256": 256}
#: every nn.Linear of the Llama's base model: what bergson hooks by default
LAYERS = ["model.layers.*.self_attn.*_proj", "model.layers.*.mlp.*_proj"]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
WINDOW = 512  # the model's positions and our query window

# The peer's own environment: same CPU torch as ours first, then the peer without its deps, then
# the pure-Python dependencies its collection and scoring code imports.
PEERS = {
    "bergson": {
        "package": "bergson==2.5.1",
        "deps": [
            "accelerate",
            "datasets",
            "jinja2",
            "jaxtyping>=0.3.3",
            "ml_dtypes",
            "natsort",
            "numpy",
            "scipy",
            "peft>=0.17.0",
            "petname",
            "pyarrow",
            "pyyaml",
            "simple-parsing",
            "torchopt",
            "transformers>=5.0",
            "huggingface-hub>=1.13.0",
            "safetensors",
        ],
        "check": "import bergson.score.scorer",
    },
    "kronfluence": {
        "package": "kronfluence==1.0.1",
        # its metadata also requires torchvision, which the library never imports
        "deps": [
            "accelerate>=0.31.0",
            "einops>=0.8.0",
            "einconv>=0.1.0",
            "opt-einsum>=3.3.0",
            "safetensors>=0.4.2",
            "tqdm>=4.66.4",
            "transformers>=5.0",
            "numpy",
        ],
        "check": "import kronfluence.analyzer",
    },
}


def ensure_peer_env(name: str, root: Path) -> Path:
    """The python of the peer's venv under ``root`` (created on first use); never touches .venv."""
    env = root / name
    py = env / "bin" / "python"
    marker = env / ".complete"
    spec = PEERS[name]
    if marker.exists() and marker.read_text().strip() == spec["package"]:
        return py
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    print(f"building {env} ({spec['package']}, {torch_pin} CPU) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, torch_pin], check=True)  # first: the local CPU build
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as c:
        c.write(torch_pin + "\n")  # nothing below may replace it (no CUDA torch)
    subprocess.run([*pip, "--no-deps", spec["package"]], check=True)
    subprocess.run([*pip, "-c", c.name, *spec["deps"]], check=True)
    os.unlink(c.name)
    subprocess.run(
        [str(py), "-c", f"{spec['check']}; import torch; assert torch.__version__.endswith('+cpu')"],
        check=True,
    )
    marker.write_text(spec["package"] + "\n")
    return py


# --------------------------------------------------------------------------------------------
# The bergson side: a driver run with the peer's python. It reads a spec, builds each setting's
# query gradient once, then answers "run <setting>" lines on stdin with one timed scoring pass.
# --------------------------------------------------------------------------------------------
BERGSON_DRIVER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path

    import numpy as np
    import torch
    from datasets import Dataset

    from bergson.collector.collector import CollectorComputer
    from bergson.collector.in_memory_collector import InMemoryCollector
    from bergson.collection import collect_gradients
    from bergson.config.config import IndexConfig, PreprocessConfig
    from bergson.data import allocate_batches
    from bergson.score.score_writer import InMemorySequenceScoreWriter
    from bergson.score.scorer import Scorer
    from bergson.utils.worker_utils import processor_for, setup_model_and_peft

    spec = json.loads(Path(sys.argv[1]).read_text())
    torch.set_num_threads(spec["threads"])
    out = Path(spec["out"])
    docs = Dataset.from_dict({"input_ids": spec["docs"], "length": [len(d) for d in spec["docs"]]})

    def say(obj):
        print("@@PEER " + json.dumps(obj), flush=True)

    def index_cfg(name, s, loss_reduction):
        return IndexConfig(
            run_path=str(out / name),
            model=spec["model"],
            precision="fp32",
            projection_dim=s["projection_dim"],
            loss_reduction=loss_reduction,
            token_batch_size=s["token_batch_size"],
            max_batch_size=s["max_batch_size"],
        )

    model = None
    settings = {}
    for name, s in spec["settings"].items():
        cfg = index_cfg(name, s, s["loss_reduction"])
        Path(cfg.partial_run_path).mkdir(parents=True, exist_ok=True)
        if model is None:
            model, _ = setup_model_and_peft(cfg)  # freezes weights, embedding requires grad
        processor = processor_for(cfg)
        # the query: gold continuation's summed NLL (labels -100 on the context), mean over questions
        qcfg = index_cfg(name + "-query", s, "sum")
        Path(qcfg.partial_run_path).mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        cols = []
        for bench in spec["queries"]:
            ids = [c + t for c, t in bench]
            labels = [[-100] * len(c) + t for c, t in bench]
            qds = Dataset.from_dict({"input_ids": ids, "labels": labels, "length": [len(i) for i in ids]})
            col = InMemoryCollector(
                model=model.base_model,
                cfg=qcfg,
                processor=processor,
                data=qds,
                preprocess_cfg=PreprocessConfig(aggregation="mean"),
            )
            batches = allocate_batches(qds["length"][:], qcfg.token_batch_size, max_batch_size=qcfg.max_batch_size)
            CollectorComputer(model=model, data=qds, collector=col, batches=batches, cfg=qcfg).run_with_collector_hooks()
            cols.append(dict(col.gradients))
        qgrads = {m: torch.cat([c[m] for c in cols]).float() for m in cols[0]}
        query_s = time.perf_counter() - t0
        batches = allocate_batches(docs["length"][:], cfg.token_batch_size, max_batch_size=cfg.max_batch_size)
        settings[name] = (cfg, processor, qgrads, batches)
        qnorm = float(torch.cat([g.flatten(1) for g in qgrads.values()], 1).norm(dim=1)[0])
        say({"ready": name, "query_seconds": query_s, "modules": sorted(qgrads), "query_norm": qnorm})

    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        name = cmd[1]
        cfg, processor, qgrads, batches = settings[name]
        scorer = Scorer(
            query_grads=qgrads,
            modules=sorted(qgrads),
            writer=InMemorySequenceScoreWriter(len(docs), next(iter(qgrads.values())).shape[0]),
            device=torch.device("cpu"),
            dtype=torch.float32,
            unit_normalize=False,
            score_mode="individual",
        )
        w0, c0 = time.perf_counter(), time.process_time()
        collect_gradients(model, docs, processor, cfg, batches=batches, scorer=scorer)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        np.save(out / f"{name}.npy", scorer.writer.scores.numpy().astype(np.float64))
        say({"done": name, "wall": wall, "cpu": cpu})
    """
)


# The kronfluence side: a Task whose training loss is the sum over documents of each document's
# mean token NLL (ours) and whose measurement is the gold continuations' summed NLL; modules
# tracked: the same linear layers. One timed ``compute_pairwise_scores`` per "run" line.
KRONFLUENCE_DRIVER = textwrap.dedent(
    """
    import json, logging, sys, time
    from pathlib import Path

    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch.utils.data import Dataset
    from transformers import AutoModelForCausalLM

    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task
    from kronfluence.utils.dataset import DataLoaderKwargs

    spec = json.loads(Path(sys.argv[1]).read_text())
    torch.set_num_threads(spec["threads"])
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)

    def say(obj):
        print("@@PEER " + json.dumps(obj), flush=True)

    class Rows(Dataset):
        def __init__(self, ids, labels):
            self.ids, self.labels = ids, labels
        def __len__(self):
            return len(self.ids)
        def __getitem__(self, i):
            return self.ids[i], self.labels[i]

    def collate(rows):
        t = max(len(r[0]) for r in rows)
        ids = torch.tensor([r[0] + [0] * (t - len(r[0])) for r in rows])
        labels = torch.tensor([r[1] + [-100] * (t - len(r[1])) for r in rows])
        mask = torch.tensor([[1] * len(r[0]) + [0] * (t - len(r[0])) for r in rows])
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    modules = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n.startswith("model.layers.")]

    def nll(batch, model, sample=False):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
        y = batch["labels"][:, 1:]
        if sample:
            with torch.no_grad():
                drawn = torch.multinomial(logits.softmax(-1).reshape(-1, logits.shape[-1]), 1).view_as(y)
            y = torch.where(y == -100, y, drawn)
        flat = logits.reshape(-1, logits.shape[-1])
        return F.cross_entropy(flat, y.reshape(-1), reduction="none").view_as(y), y

    class LMTask(Task):
        def compute_train_loss(self, batch, model, sample=False):
            tok, y = nll(batch, model, sample)
            return (tok.sum(1) / (y != -100).sum(1)).sum()  # Σ over documents of the mean token NLL
        def compute_measurement(self, batch, model):
            tok, _ = nll(batch, model)
            return tok.sum()  # Σ over questions of the gold continuation's summed NLL
        def get_influence_tracked_modules(self):
            return modules
        def get_attention_mask(self, batch):
            return batch["attention_mask"]

    task = LMTask()
    model = prepare_model(model, task)
    analyzer = Analyzer("peers", model, task, cpu=True, disable_tqdm=True, output_dir=str(out), log_level=logging.WARNING)
    loader = DataLoaderKwargs(collate_fn=collate)
    # documents in descending length, as our engine batches them (less padding); scores unsorted below
    order = sorted(range(len(spec["docs"])), key=lambda i: -len(spec["docs"][i]))
    docs = Rows([spec["docs"][i] for i in order], [spec["docs"][i] for i in order])
    queries = []
    for bench in spec["queries"]:
        queries.append(Rows([c + t for c, t in bench], [[-100] * len(c) + t for c, t in bench]))
    batch = spec["batch"]
    for name, s in spec["settings"].items():
        t0 = time.perf_counter()
        analyzer.fit_all_factors(
            factors_name=name,
            dataset=docs,
            per_device_batch_size=batch,
            dataloader_kwargs=loader,
            factor_args=FactorArguments(strategy=s["strategy"]),
            overwrite_output_dir=True,
        )
        say({"ready": name, "factor_seconds": time.perf_counter() - t0, "modules": modules})

    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        name = cmd[1]
        s = spec["settings"][name]
        w0, c0 = time.perf_counter(), time.process_time()
        # one pass over the documents: K = 1, the summed query gradient (/ |Q|: the mean); K > 1,
        # kronfluence's per-example query gradients of all benchmarks, averaged per benchmark
        allq = Rows([i for q in queries for i in q.ids], [l for q in queries for l in q.labels])
        analyzer.compute_pairwise_scores(
            scores_name=name,
            factors_name=name,
            query_dataset=allq,
            train_dataset=docs,
            per_device_query_batch_size=len(allq),
            per_device_train_batch_size=batch,
            dataloader_kwargs=loader,
            score_args=ScoreArguments(aggregate_query_gradients=len(queries) == 1, damping_factor=s["damping"]),
            overwrite_output_dir=True,
        )
        raw = analyzer.load_pairwise_scores(name)["all_modules"].double()
        if len(queries) == 1:
            cols = [raw.sum(0) / len(allq)]
        else:
            bounds = np.cumsum([0] + [len(q) for q in queries])
            cols = [raw[bounds[k] : bounds[k + 1]].mean(0) for k in range(len(queries))]
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        scores = torch.empty(len(order), len(cols), dtype=torch.float64)
        scores[order] = torch.stack(cols, 1)
        np.save(out / f"{name}.npy", scores.numpy())
        say({"done": name, "wall": wall, "cpu": cpu})
    """
)


class Peer:
    """A peer's driver in its own venv, kept alive so that repetitions interleave with ours."""

    def __init__(self, name: str, python: Path, spec: dict, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        driver = self.workdir / "driver.py"
        driver.write_text(DRIVERS[name])
        spec_path = self.workdir / "spec.json"
        spec_path.write_text(json.dumps(dict(spec, out=str(self.workdir))))
        env = dict(os.environ)
        env.update(
            OMP_NUM_THREADS=str(spec["threads"]),
            TQDM_DISABLE="1",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            PYTHONPATH="",
        )
        self.log = open(self.workdir / "peer.log", "w")  # noqa: SIM115  # closed in close()
        self.proc = subprocess.Popen(
            [str(python), str(driver), str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
            cwd=self.workdir,
        )
        self.ready = {r["ready"]: r for r in (self._reply() for _ in spec["settings"])}

    def _reply(self) -> dict:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("@@PEER "):
                return json.loads(line[7:])
        self.log.flush()
        tail = (self.workdir / "peer.log").read_text()[-4000:]
        raise RuntimeError(f"{self.name} driver exited (rc {self.proc.wait()}):\n{tail}")

    def run(self, setting: str) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"run {setting}\n")
        self.proc.stdin.flush()
        return self._reply()

    def scores(self, setting: str) -> np.ndarray:
        return np.load(self.workdir / f"{setting}.npy")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=120)
        self.log.close()


DRIVERS = {"bergson": BERGSON_DRIVER, "kronfluence": KRONFLUENCE_DRIVER}


# --------------------------------------------------------------------------------------------
# Shared inputs
# --------------------------------------------------------------------------------------------
def read_texts(data: Path, n: int) -> list[str]:
    """``n`` documents taken round-robin over the corpus domains (deterministic)."""
    by_domain: dict[str, list[str]] = {}
    for doc in iter_documents(str(data / "corpus")):
        lst = by_domain.setdefault(doc.group, [])
        if len(lst) < n:
            lst.append(doc.text)
    out: list[str] = []
    for i in range(n):
        for d in sorted(by_domain):
            if i < len(by_domain[d]):
                out.append(by_domain[d][i])
    return out[: n * len(by_domain)]


def train_steps(model: torch.nn.Module, seqs: list[list[int]], steps: int, seq: int) -> None:
    """A few AdamW steps on packed text so the logits are not those of a random init."""
    flat = [t for s in seqs for t in s]
    n = len(flat) // seq
    data = torch.tensor(flat[: n * seq]).view(n, seq)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        x = data[torch.randint(0, n, (16,), generator=g)]
        logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()


def forward_backward(model: torch.nn.Module, docs: list[list[int]], batch: int) -> None:
    """The floor of any one-pass scorer: forward + backward of the per-document mean losses with
    every weight frozen but the input embedding (what bergson runs), no hooks, no contraction;
    documents sorted by length and right-padded like both tools do."""
    emb = model.get_input_embeddings().weight
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    emb.requires_grad_(True)
    order = sorted(docs, key=len, reverse=True)
    for i in range(0, len(order), batch):
        rows = order[i : i + batch]
        t = max(len(r) for r in rows)
        x = torch.tensor([r + [0] * (t - len(r)) for r in rows])
        y = torch.tensor([r[1:] + [-100] * (t - len(r)) for r in rows])
        logits = model(input_ids=x, use_cache=False).logits[:, :-1]
        flat = logits.reshape(-1, logits.shape[-1])
        nll = F.cross_entropy(flat, y.reshape(-1), reduction="none").view_as(y)
        (nll.sum(1) / (y != -100).sum(1)).sum().backward()
    emb.grad = None
    emb.requires_grad_(False)
    for p in frozen:
        p.requires_grad_(True)


def correlations(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Pearson and Spearman (Pearson of ranks; ties are improbable in float scores) of two [D, K]
    score matrices, column by column; the lowest over the K query columns."""
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    pearson, spearman = [], []
    for k in range(a.shape[1]):
        x, y = a[:, k], b[:, k]
        pearson.append(float(np.corrcoef(x, y)[0, 1]))
        rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
        spearman.append(float(np.corrcoef(rx, ry)[0, 1]))
    return min(pearson), min(spearman)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="d128", choices=list(SIZES))
    ap.add_argument("--layers", type=int, default=4, help="decoder layers")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--docs", type=int, default=256, help="documents to score")
    ap.add_argument("--seq", type=int, default=128, help="tokens per document (longer ones are cut)")
    ap.add_argument("--batch", type=int, default=16, help="documents per forward/backward (both tools)")
    ap.add_argument("--benchmarks", default="arc_easy", help="comma-separated; one query vector each (K)")
    ap.add_argument("--queries", type=int, default=32, help="gold answers per benchmark")
    ap.add_argument("--train-steps", type=int, default=40)
    ap.add_argument(
        "--configs",
        default="exact,defaults,proj16,kf-identity,kf-ekfac",
        help="peer settings to run (bergson: exact, defaults, proj16; kronfluence: kf-identity, kf-ekfac)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--envs", type=Path, default=ROOT / ".bench-envs", help="where peer venvs live")
    ap.add_argument("--setup", action="store_true", help="only build the peer venvs")
    ap.add_argument("--out", type=Path, help="write the results as JSON")
    args = ap.parse_args()
    if not 16 <= args.seq <= WINDOW:
        ap.error(f"--seq must be between 16 and {WINDOW} (the model's positions)")
    if args.setup:
        for p in PEERS:
            print(ensure_peer_env(p, args.envs))
        return
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    # the same documents and queries, tokenized once, for both tools
    n_domains = len([p for p in (args.data / "corpus").iterdir() if p.is_dir()])
    per_domain = -(-(args.docs * 3) // n_domains)
    texts = read_texts(args.data, per_domain)
    tok = train_bpe_tokenizer(texts, vocab_size=args.vocab)
    ids = [tok(t)["input_ids"][: args.seq] for t in texts]
    ids = [t for t in ids if len(t) >= 16]
    docs, train_text = ids[: args.docs], ids[args.docs :]
    benches = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    queries = {}
    for name in benches:
        bench = load_benchmark(
            BenchmarkSpec(name=name, data_dir=args.data, query_limit=args.queries, eval_limit=1)
        )
        # the last 512 tokens (the model's positions, our query window) of context + answer, cut
        # here so that both tools see the same query (a peer would otherwise read past 512)
        queries[name] = [
            (list(c)[-(WINDOW - len(t)) :], list(t)) for c, t in gold_pairs(tok, bench.query_instances)
        ]

    hidden = SIZES[args.model]
    shape = ProxyConfig(
        hidden=hidden, layers=args.layers, heads=4, kv_heads=2, intermediate=hidden * 2, max_positions=WINDOW
    )
    model = build_model(shape, vocab_size=len(tok), eos_id=0)
    train_steps(model, train_text, args.train_steps, args.seq)
    n_tokens = sum(len(d) for d in docs)

    # window: the model's WINDOW positions (queries were cut to it above; documents to --seq)
    cfg = InfluenceConfig(estimator="grad_dot", layers=LAYERS, batch_size=args.batch, query_loss="sum")
    pairs = [(str(i), d) for i, d in enumerate(docs)]
    settings_all: dict[str, tuple[str, dict, str]] = {
        "exact": (
            "bergson",
            {"projection_dim": 0, "loss_reduction": "mean", "token_batch_size": args.batch * args.seq},
            "projection off, loss mean, same batches",
        ),
        "defaults": (
            "bergson",
            {"projection_dim": 0, "loss_reduction": "sum", "token_batch_size": 2048},
            "bergson defaults (loss sum, 2048-token batches)",
        ),
        "proj16": (
            "bergson",
            {"projection_dim": 16, "loss_reduction": "mean", "token_batch_size": args.batch * args.seq},
            "projection 16 (TrackStar), loss mean",
        ),
        "kf-identity": (
            "kronfluence",
            {"strategy": "identity", "damping": 1e-8},
            "identity (no preconditioner)",
        ),
        "kf-ekfac": (
            "kronfluence",
            {"strategy": "ekfac", "damping": 1e-8},
            "EK-FAC, damping 1e-8 (its defaults)",
        ),
    }
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [n for n in names if n not in settings_all]
    if unknown:
        raise SystemExit(f"unknown --configs {unknown}; choose from {list(settings_all)}")
    by_peer: dict[str, dict[str, dict]] = {}
    for n in names:
        peer_name, st, _ = settings_all[n]
        if peer_name == "bergson":
            st = dict(st, max_batch_size=None if n == "defaults" else args.batch)
        by_peer.setdefault(peer_name, {})[n] = st
    pythons = {p: ensure_peer_env(p, args.envs) for p in by_peer}

    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        work = Path(tmp)
        model.save_pretrained(work / "model")
        t0 = time.perf_counter()
        ours_q = build_query_vectors(model, queries, cfg)
        ours_query_s = time.perf_counter() - t0
        ours_qnorm = float(torch.cat([v.flatten(1) for v in ours_q.blocks.values()], 1).norm(dim=1)[0])
        score_documents(model, pairs[: args.batch], ours_q, cfg)  # warm-up
        peers: dict[str, Peer] = {}
        try:
            for p, st in by_peer.items():
                spec = {
                    "model": str(work / "model"),
                    "docs": docs,
                    "queries": [queries[b] for b in benches],
                    "threads": args.threads,
                    "batch": args.batch,
                    "settings": st,
                }
                peers[p] = Peer(p, pythons[p], spec, work)
                for r in peers[p].ready.values():
                    if len(r["modules"]) != len(ours_q.blocks):
                        raise SystemExit(
                            f"{p} tracks {len(r['modules'])} modules, ours {len(ours_q.blocks)}: not the same weights"
                        )
            for n in names:
                peers[settings_all[n][0]].run(n)  # warm-up
            times: dict[str, dict[str, list[float]]] = {
                k: {"wall": [], "cpu": []} for k in ["ours", "floor", *names]
            }
            ours_scores = None
            forward_backward(model, docs[: args.batch], args.batch)  # warm-up
            for _ in range(args.reps):
                w0, c0 = time.perf_counter(), time.process_time()
                forward_backward(model, docs, args.batch)
                times["floor"]["wall"].append(time.perf_counter() - w0)
                times["floor"]["cpu"].append(time.process_time() - c0)
                w0, c0 = time.perf_counter(), time.process_time()
                res = score_documents(model, pairs, ours_q, cfg)
                times["ours"]["wall"].append(time.perf_counter() - w0)
                times["ours"]["cpu"].append(time.process_time() - c0)
                ours_scores = res.scores.astype(np.float64)
                for n in names:
                    r = peers[settings_all[n][0]].run(n)
                    times[n]["wall"].append(r["wall"])
                    times[n]["cpu"].append(r["cpu"])
            assert ours_scores is not None
            theirs = {n: peers[settings_all[n][0]].scores(n) for n in names}
            ready = {n: peers[settings_all[n][0]].ready[n] for n in names}
        finally:
            for peer in peers.values():
                peer.close()

    best = {k: {c: min(v[c]) for c in ("wall", "cpu")} for k, v in times.items()}
    tok_s = {k: {c: n_tokens / best[k][c] for c in ("wall", "cpu")} for k in best}
    rows: list[dict] = [
        {"tool": "automixer", "settings": "grad_dot, same weights, loss mean", **tok_s["ours"]},
        {"tool": "(floor)", "settings": "plain autograd fwd+bwd, embedding grad, no hooks", **tok_s["floor"]},
    ]
    for n in names:
        peer_name, _, label = settings_all[n]
        p, sp = correlations(ours_scores, theirs[n])
        rel = float(np.max(np.abs(theirs[n] - ours_scores)) / np.max(np.abs(ours_scores)))
        rows.append(
            {"tool": peer_name, "setting": n, "settings": label, **tok_s[n], "pearson": p, "spearman": sp}
        )
        rows[-1]["max_rel_diff"] = rel
    for r in rows[1:]:
        r["ratio_wall"] = tok_s["ours"]["wall"] / r["wall"]
        r["ratio_cpu"] = tok_s["ours"]["cpu"] / r["cpu"]

    print(
        f"model {args.model} ({args.layers} layers, vocab {len(tok)}, {args.train_steps} training steps), "
        f"{len(docs)} documents, {n_tokens} tokens (≤{args.seq} each), batch {args.batch}, "
        f"K={len(benches)} ({','.join(benches)}, {args.queries} gold answers each), "
        f"threads {args.threads}, fp32, best of {args.reps}; {len(ours_q.blocks)} weight matrices"
    )
    hdr = (
        f"| {'tool':11} | {'settings':49} | {'tok/s wall':>10} | {'tok/s CPU':>9} | "
        f"{'ours/theirs wall':>16} | {'ours/theirs CPU':>15} | {'Pearson':>9} | {'Spearman':>9} |"
    )
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    for r in rows:
        rw = f"{r['ratio_wall']:.2f}×" if "ratio_wall" in r else "—"
        rc = f"{r['ratio_cpu']:.2f}×" if "ratio_cpu" in r else "—"
        corr = f"{r['pearson']:>9.6f} | {r['spearman']:>9.6f}" if "pearson" in r else f"{'—':>9} | {'—':>9}"
        print(
            f"| {r['tool']:11} | {r['settings']:49} | {r['wall']:>10.0f} | {r['cpu']:>9.0f} | {rw:>16} | {rc:>15} | "
            f"{corr} |"
        )
    prep = ", ".join(
        f"{n} {ready[n].get('query_seconds', ready[n].get('factor_seconds', 0.0)):.2f}s" for n in names
    )
    print(f"ours: query build {ours_query_s:.2f}s, query norm {ours_qnorm:.6g}")
    print(f"peers, query build (bergson) / factor fit (kronfluence), not in tok/s: {prep}")
    for n in names:
        if "query_norm" in ready[n]:
            print(f"bergson {n} query norm {ready[n]['query_norm']:.6g}")
    if "defaults" in theirs:
        # bergson's default loss is the document's summed NLL: ours × its predicted-token count
        scaled = ours_scores * (np.array([len(d) for d in docs], dtype=np.float64) - 1)[:, None]
        p, sp = correlations(scaled, theirs["defaults"])
        rel = float(np.max(np.abs(theirs["defaults"] - scaled)) / np.max(np.abs(scaled)))
        print(f"defaults vs ours × (tokens − 1): Pearson {p:.6f}, Spearman {sp:.6f}, max rel diff {rel:.2e}")
    for r in rows:
        if "max_rel_diff" in r:
            print(f"max |theirs − ours| / max |ours|, {r['setting']}: {r['max_rel_diff']:.2e}")
    print(f"total {time.perf_counter() - t_start:.0f}s")
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "n_tokens": n_tokens,
                    "rows": rows,
                    "times": times,
                    "median_wall": {k: statistics.median(v["wall"]) for k, v in times.items()},
                    "ours_query_seconds": ours_query_s,
                    "peer_ready": ready,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
