"""Flow ``label``: a mixture's scored documents → group predictor → every corpus shard labelled →
``labels/<id>/`` with a folder per group and exports that point at them (issue 13)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.task_runners import ThreadPoolTaskRunner

import automixer_core
from automixer_core.config import RunConfig
from automixer_core.errors import ConfigError
from automixer_core.labels.summary import accuracy_sentence
from automixer_core.published import read_published_mixture
from automixer_core.store import Store
from flows.naming import run_name
from flows.scoring import dask_map, worker_config
from flows.workpool import PoolUnit, run_all_on_workpool
from tasks.checkpoints import discover_task
from tasks.corpus import shards_task
from tasks.keys import LATEST_KEY
from tasks.labels import label_task, publish_labels_task, shard_label_key, train_predictor_task


def _absolute(uri: str) -> str:
    return uri if "://" in uri or Path(uri).is_absolute() else str(Path(uri).resolve())


def _pool_unit(store: Store, params: dict[str, Any]) -> PoolUnit:
    keys = [shard_label_key(params["label_id"], s) for s in params["shards"]]
    digest = hashlib.sha256(
        json.dumps(
            [params["store_uri"], params["label_id"], [s["digest"] for s in params["shards"]]]
        ).encode()
    ).hexdigest()[:24]

    def missing() -> int:
        return sum(not store.exists(k) for k in keys)

    def result(computed: int) -> dict[str, Any]:
        return {"keys": keys, "computed": computed}

    return PoolUnit(
        key=f"automixer-label-{digest}",
        parameters={**params, "corpus": params["corpus"].model_dump(mode="json")},
        missing=missing,
        result=result,
    )


def _label_units(config: RunConfig, params: list[dict[str, Any]], on_done: Any) -> list[dict[str, Any]]:
    """Run every labelling unit where ``execution.mode`` says (as scoring does)."""
    mode = config.execution.mode
    if mode == "dask":
        return dask_map(config, label_task, params, on_done)
    if mode == "workpool":
        store = Store(config.store)
        return run_all_on_workpool(
            config.execution.label_deployment,
            [_pool_unit(store, p) for p in params],
            store=config.store,
            tags=["label-shards"],
            poll_s=config.execution.poll_s,
            timeout_s=config.execution.timeout_s,
            on_done=on_done,
            what="labelling",
            rerun="run label again: shards already labelled are kept",
        )
    futures = [label_task.submit(**p) for p in params]
    out = []
    for f in futures:
        out.append(f.result())
        on_done()
    return out


@flow(
    name="label",
    flow_run_name=run_name("label"),
    task_runner=ThreadPoolTaskRunner(max_workers=1),  # type: ignore[arg-type]
)
def label_flow(config: RunConfig, mixture: str | None = None) -> dict[str, Any]:
    """Label every document of ``config.corpus`` with a group of ``mixture`` (default: the store's
    latest): the scored documents keep their group, the others get the predictor's.

    Returns ``{"id", "uri", "predictor": {"digest", "report"}, "summary", "counts": {"shards",
    "shards_labelled", "documents_labelled", "predictor_trained"}, "exports"}``.
    """
    log = get_run_logger()
    if config.corpus is None:
        raise ConfigError("The run config has no corpus section", fix="add corpus: {uri: <folder>}")
    store = Store(config.store)
    store.check_writable()
    if mixture is None:
        if not store.exists(LATEST_KEY):
            raise ConfigError(
                f"No mixture in store {config.store!r} to label with",
                fix="run `automixer remix CONFIG` first, or pass --mixture <.../mixtures/<id>/mixture.json>",
            )
        mixture = str(store.read_json(LATEST_KEY)["uri"])
    mixture = _absolute(mixture)
    mix = read_published_mixture(mixture)
    shipped = worker_config(config)  # workers (Dask, work pool) run in folders of their own
    assert shipped.corpus is not None
    scored_shards = shards_task(shipped.corpus)  # the shards the remix scored
    lab = config.labeling
    full = shipped.corpus.model_copy(update={"max_docs_per_file": None, "shard_docs": lab.shard_docs})
    shards = shards_task(full)
    checkpoint = None
    if lab.predictor.features != "ngrams":  # the proxy's last checkpoint reads every document
        checkpoint = discover_task(shipped.checkpoints.uri, shipped.checkpoints.revision)[-1]
    predictor = train_predictor_task(
        shipped.store,
        mix.id,
        mixture,
        shipped.corpus,
        scored_shards,
        lab.predictor,
        checkpoint,
        config.evaluation.device,
    )
    label_id = hashlib.sha256(
        json.dumps(
            [
                predictor["digest"],
                mix.id,
                lab.write_documents,
                full.model_dump(mode="json"),
                automixer_core.__version__,
            ]
        ).encode()
    ).hexdigest()[:16]
    batches = [shards[i : i + lab.shards_per_task] for i in range(0, len(shards), lab.shards_per_task)]
    params = [
        {
            "store_uri": shipped.store,
            "label_id": label_id,
            "predictor_key": predictor["key"],
            "mixture_uri": mixture,
            "corpus": full,
            "shards": batch,
            "write_documents": lab.write_documents,
        }
        for batch in batches
    ]
    progress = cast(
        UUID, create_progress_artifact(0.0, key="label-shards", description="shard batches labelled")
    )
    done = [0]

    def on_done() -> None:
        done[0] += 1
        update_progress_artifact(progress, 100.0 * done[0] / max(1, len(batches)))

    log.info(
        "Labelling %d shards in %d units with predictor %s", len(shards), len(batches), predictor["digest"]
    )
    results = _label_units(config, params, on_done)
    keys = [k for r in results for k in r["keys"]]
    doc = publish_labels_task(shipped.store, label_id, mixture, predictor, keys, list(config.publish.exports))
    summary = doc["summary"]
    report = predictor["report"]
    create_table_artifact(
        key="label-groups",
        table=[
            {
                "group": g,
                "documents": f"{v['documents']:,}",
                "scored": f"{v['scored']:,}",
                "predicted": f"{v['predicted']:,}",
                "token share": f"{100 * v['token_share']:.1f}%",
                "mixture weight": f"{100 * v['weight']:.1f}%",
            }
            for g, v in summary["groups"].items()
        ],
        description=f"labels {label_id} of mixture {mix.id}: documents per group",
    )
    create_markdown_artifact(
        key="label-summary",
        markdown=f"## Labels `{label_id}` of mixture `{mix.id}`\n\n"
        f"{summary['documents']:,} documents: {summary['scored']:,} scored, {summary['predicted']:,} "
        f"predicted. Group predictor: {accuracy_sentence(report)}.\n\n"
        f"Summary: `{doc['uri']}`",
    )
    return {
        "id": label_id,
        "uri": doc["uri"],
        "predictor": {"digest": predictor["digest"], "report": report},
        "summary": summary,
        "exports": doc["exports"],
        "counts": {
            "shards": len(shards),
            "shards_labelled": sum(r["computed"] for r in results),
            "documents_labelled": sum(r.get("documents", 0) for r in results),
            "predictor_trained": bool(predictor["computed"]),
        },
    }
