"""Flow ``label-shards``: the labelling unit (a batch of corpus shards), deployable on a work pool."""

from __future__ import annotations

from typing import Any

from prefect import flow

from automixer_core.config import CorpusConfig
from tasks.labels import label_task
from tasks.naming import scoring_name


@flow(name="label-shards", flow_run_name=scoring_name("label"))
def label_shards_flow(
    store_uri: str,
    label_id: str,
    predictor_key: str,
    mixture_uri: str,
    corpus: CorpusConfig,
    shards: list[dict[str, Any]],
    write_documents: bool = True,
) -> dict[str, Any]:
    """Label ``shards`` with the predictor at ``predictor_key`` (see :func:`tasks.labels.label_task`).

    Idempotent: shards already labelled in the store are skipped. The ``label`` flow fans these runs
    out in ``workpool`` mode. Returns ``{"keys", "computed", "documents", "seconds"}``.
    """
    return label_task(store_uri, label_id, predictor_key, mixture_uri, corpus, shards, write_documents)
