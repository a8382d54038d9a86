"""The ``automixer`` command line, run in-process against the test Prefect API."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from automixer.cli import app

runner = CliRunner()


def test_benchmarks_lists_the_paper_eight() -> None:
    result = runner.invoke(app, ["benchmarks"])
    assert result.exit_code == 0
    assert result.output.count("(paper)") == 8


def test_discover_prints_checkpoints_in_step_order(proxy_run: Any) -> None:
    result = runner.invoke(app, ["discover", str(proxy_run.path)])
    assert result.exit_code == 0, result.output
    steps = [c.step for c in proxy_run.result.checkpoints]
    positions = [result.output.index(f"checkpoint-{s}") for s in steps]
    assert positions == sorted(positions)


def test_discover_missing_folder_is_one_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["discover", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "nope" in result.output and "Traceback" not in result.output


def test_discover_json_is_the_checkpoint_list_alone_on_stdout(proxy_run: Any, tmp_path: Path) -> None:
    result = runner.invoke(app, ["discover", str(proxy_run.path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # stdout holds the one document and nothing else
    folders = sorted(proxy_run.path.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert [c["name"] for c in doc["checkpoints"]] == [f.name for f in folders]
    steps = [c["step"] for c in doc["checkpoints"]]
    assert steps == sorted(steps) == [int(f.name.split("-")[1]) for f in folders]
    assert [Path(c["uri"]).resolve() for c in doc["checkpoints"]] == [f.resolve() for f in folders]
    fingerprints = [c["fingerprint"] for c in doc["checkpoints"]]
    assert len(set(fingerprints)) == len(folders) and all(len(f) == 16 for f in fingerprints)
    assert doc["skipped"] == [] and doc["uri"] == str(proxy_run.path)

    missing = runner.invoke(app, ["discover", str(tmp_path / "nope"), "--json"])
    assert missing.exit_code == 2 and missing.stdout == ""  # the error goes to stderr alone
    assert "nope" in missing.stderr


def test_emit_json_writes_strict_json(capsys: pytest.CaptureFixture[str]) -> None:
    """NaN (a benchmark a checkpoint has no score on) is null, numpy scalars are numbers, one line."""
    import numpy as np

    from automixer.cli import emit_json

    emit_json({"step": np.int64(15), "acc": np.float64("nan"), "pair": (1, 2.5), "where": Path("/x")})
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert json.loads(out, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}")) == {
        "step": 15,
        "acc": None,
        "pair": [1, 2.5],
        "where": "/x",
    }


@pytest.mark.slow
def test_evaluate_command_writes_table_and_plot(
    prefect_api: None, proxy_run: Any, shared_data: Path, tmp_path: Path
) -> None:
    import pandas as pd

    store = tmp_path / "store"
    args = ["evaluate", "--checkpoints", str(proxy_run.path), "--data", str(shared_data)]
    args += ["--benchmarks", "arc_easy,boolq", "--limit", "4", "--store", str(store)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Artifact models" in result.output
    assert len(list(store.glob("reports/evaluation/*/capability.png"))) == 1
    assert len(list(store.glob("reports/evaluation/*/evals.csv"))) == 1

    # --json: the same run again (all from the store) as one document: the table and the selection
    as_json = runner.invoke(app, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.stdout)
    assert doc["computed"] == 0 and doc["pairs"] == 2 * len(proxy_run.result.checkpoints)
    assert doc["metric"] == "acc_norm"
    evals = pd.read_csv(next(store.glob("reports/evaluation/*/evals.csv")))
    assert [r["step"] for r in doc["table"]] == sorted(evals["step"].unique().tolist())
    for row in doc["table"]:
        for bench in ("arc_easy", "boolq"):
            want = evals[(evals["step"] == row["step"]) & (evals["benchmark"] == bench)]["acc_norm"]
            assert row[bench] == pytest.approx(float(want.iloc[0]))
        assert row["mean"] == pytest.approx((row["arc_easy"] + row["boolq"]) / 2)
    assert sorted(r["benchmark"] for r in doc["selection"]) == ["arc_easy", "boolq"]
    assert (
        Path(doc["uris"]["capability.png"]).resolve()
        == next(store.glob("reports/evaluation/*/capability.png")).resolve()
    )


def test_evaluate_bad_config_names_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("checkpoints: {uri: x}\nevaluation: {batch_sise: 4}\n")
    result = runner.invoke(app, ["evaluate", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "batch_sise" in result.output


@pytest.mark.slow
def test_remix_then_export(prefect_api: None, proxy_run: Any, shared_data: Path, tmp_path: Path) -> None:
    import shutil

    import yaml

    run = tmp_path / "run"
    for ckpt in proxy_run.checkpoints[:2]:
        shutil.copytree(ckpt, run / ckpt.name)
    cfg = {
        "store": str(tmp_path / "store"),
        "checkpoints": {"uri": str(run)},
        "benchmarks": {
            "names": ["arc_easy", "piqa"],
            "data_dir": str(shared_data),
            "eval_limit": 4,
            "query_limit": 4,
        },
        "corpus": {
            "uri": str(shared_data / "corpus"),
            "max_docs_per_file": 4,
            "shard_docs": 4,
            "max_doc_chars": 600,
        },
        "influence": {"estimator": "grad_dot"},
        "aggregation": {"bootstrap": 20},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    # --dry-run: what would run, from the store's state, computing nothing (--config: the alias)
    dry = runner.invoke(app, ["remix", "--config", str(path), "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert len(plan["evaluations_missing"]) == plan["evaluations_total"] == 2 * 2
    assert not plan["selection_known"] and not plan["nothing_new"]
    assert not (tmp_path / "store" / "evals").exists()  # nothing was computed
    # plan: the same units with a cost, throughput measured here on the config's own model
    planned = runner.invoke(app, ["plan", str(path), "--workers", "1,2", "--json"])
    assert planned.exit_code == 0, planned.output
    cost = json.loads(planned.stdout)["cost"]
    assert cost["evaluations"] == 4 and cost["upper_bound"]
    assert cost["throughput"]["source"]["score"].startswith("measured")
    assert cost["throughput"]["score_k"] == 2 and cost["throughput"]["score_doc_s_k1"] > 0  # K = 1 and 2
    hours = {int(k): v for k, v in cost["hours_by_workers"].items()}
    assert 0 < hours[2] < hours[1]  # scoring spreads over the workers
    both = runner.invoke(app, ["remix", str(path), "--config", str(tmp_path / "other.yaml"), "--dry-run"])
    assert both.exit_code == 2 and "Two run configs given" in both.output
    # --json: the flow's result as the one document on stdout (no table, no status lines)
    as_json = runner.invoke(app, ["remix", str(path), "--json"])
    assert as_json.exit_code == 0, as_json.output
    remixed = json.loads(as_json.stdout)
    latest = json.loads((tmp_path / "store" / "mixtures" / "latest.json").read_text())
    assert remixed["id"] == latest["id"] and remixed["uri"] == latest["uri"] and not remixed["nothing_new"]
    assert remixed["counts"]["evaluations"] == 2 * 2 and remixed["counts"]["shards_scored"] > 0
    published = json.loads(Path(remixed["uri"]).read_text())
    assert remixed["weights"] == pytest.approx({g["name"]: g["weight"] for g in published["groups"]})
    result = runner.invoke(app, ["remix", str(path)])
    assert result.exit_code == 0, result.output
    assert "Mixture" in result.output and "report:" in result.output
    assert "Nothing new" in result.output and latest["id"] in result.output
    assert "▸ inputs: 2 lists" in result.output and "✓ inputs: 2 checkpoints, 2 benchmarks" in result.output
    dry = runner.invoke(app, ["remix", str(path), "--dry-run", "--json"])
    plan = json.loads(dry.stdout)
    assert plan["nothing_new"] and plan["latest_mixture"] == latest["id"] and plan["selection_known"]
    assert plan["evaluations_missing"] == plan["queries_missing"] == [] and plan["scorings_missing"] == 0
    assert plan["scorings_total"] == remixed["counts"]["shards_scored"]  # every scoring is in the store
    mixture_uri = latest["uri"]
    out = tmp_path / "blend.txt"
    exported = runner.invoke(app, ["export", mixture_uri, "--format", "megatron", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    blend = out.read_text().split()  # Megatron's --data-path: w1 prefix1 w2 prefix2 ...
    assert abs(sum(float(w) for w in blend[::2]) - 1) < 1e-6
    bad = runner.invoke(app, ["export", mixture_uri, "--format", "nonesuch"])
    assert bad.exit_code == 2 and "nonesuch" in bad.output

    # label: every document of the corpus gets a group (36 scored, the rest predicted)
    cfg["labeling"] = {
        "predictor": {"n_features": 4096, "epochs": 3, "min_docs_per_group": 1},
        "shard_docs": 4000,
        "write_documents": False,
    }
    path.write_text(yaml.safe_dump(cfg))
    labelled = runner.invoke(app, ["label", str(path)])
    assert labelled.exit_code == 0, labelled.output
    assert "held-out accuracy" in labelled.output and "labels:" in labelled.output
    assert re.search(
        r"held-out\s+accuracy\s+\d+\.\d%\s+\(the\s+largest\s+group\s+alone:\s+\d+\.\d%\)", labelled.output
    )
    again = runner.invoke(app, ["label", str(path), "--mixture", mixture_uri])
    assert again.exit_code == 0 and "labelled 0 of" in again.output, again.output
    as_json = runner.invoke(app, ["label", str(path), "--mixture", mixture_uri, "--json"])
    assert as_json.exit_code == 0, as_json.output
    labels = json.loads(as_json.stdout)
    assert labels["counts"]["shards_labelled"] == 0 and labels["uri"] in labelled.output.replace("\n", "")
    summary = labels["summary"]
    assert summary["documents"] == sum(g["documents"] for g in summary["groups"].values())
    assert summary["scored"] + summary["predicted"] == summary["documents"]


def test_remix_in_workpool_mode_without_a_server_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No PREFECT_API_URL: the CLI would start a private API no worker polls; it says so instead."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"store: {tmp_path / 'store'}\ncheckpoints: {{uri: {tmp_path}}}\ncorpus: {{uri: {tmp_path}}}\n"
        "execution: {mode: workpool}\n"
    )
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = runner.invoke(app, ["remix", str(cfg)])
    assert result.exit_code == 2, result.output
    assert "execution.mode is 'workpool' but PREFECT_API_URL is not set" in " ".join(result.output.split())
    assert not (tmp_path / "store").exists()  # nothing was started or written


def test_schema_prints_the_run_form_from_the_code() -> None:
    result = runner.invoke(app, ["schema", "remix"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for text in ("config.execution.mode", "one of local, workpool, dask", "config.corpus.shard_docs"):
        assert text in result.output
    missing = runner.invoke(app, ["schema", "nope"])
    assert missing.exit_code == 2 and "no deployment named 'nope'" in missing.output


def test_misspelt_names_fail_at_config_load_before_any_work(tmp_path: Path) -> None:
    """An unknown benchmark or export format is one clean message and exit 2; nothing is started."""
    for bad, name in (
        ("benchmarks: {names: [arc_easy, pica]}", "pica"),
        ("publish: {exports: [megatorn]}", "megatorn"),
    ):
        cfg = tmp_path / "run.yaml"
        cfg.write_text(f"store: {tmp_path / 'store'}\ncheckpoints: {{uri: x}}\ncorpus: {{uri: y}}\n{bad}\n")
        result = runner.invoke(app, ["remix", str(cfg)])
        assert result.exit_code == 2, result.output
        assert name in result.output and "Traceback" not in result.output
        assert not (tmp_path / "store").exists()


def test_a_run_that_fails_exits_1_with_one_message(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run starts (the store probe passes) and fails on a missing checkpoint folder: exit 1, the
    typed error's class and message last, and no traceback anywhere on screen: Prefect's log of the
    failed task keeps its one-line message and points at the log file that holds the traceback."""
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"store: {tmp_path / 'store'}\ncheckpoints: {{uri: {tmp_path / 'no-such-run'}}}\ncorpus: {{uri: {tmp_path}}}\n"
    )
    result = runner.invoke(app, ["remix", str(cfg)])
    assert result.exit_code == 1, result.output
    last = result.output[result.output.rindex("error:") :]
    assert last.startswith("error: CheckpointError: ")
    assert "no-such-run" in last and "Fix:" in last
    assert "Traceback" not in result.output
    logs = list((tmp_path / ".automixer" / "logs").glob("run-*.txt"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert text.count("Traceback (most recent call last)") >= 3  # the task's, the flow's, the CLI's
    assert "automixer_core/checkpoints/discovery.py" in text and "CheckpointError" in text


def test_trigger_names_an_unreachable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
        result = runner.invoke(app, ["trigger", "remix", "--timeout", "5"])
    assert result.exit_code == 2, result.output
    assert "Cannot reach the Prefect API at http://127.0.0.1:9/api" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_by_groups_needs_a_mixture(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["proxy-train", "--corpus", str(tmp_path), "--out", str(tmp_path / "p"), "--by-groups"]
    )
    assert result.exit_code == 2 and "--by-groups needs --mixture" in result.output
    assert not (tmp_path / "p").exists()


def test_version_and_quiet_libraries() -> None:
    from datasets.utils.logging import is_progress_bar_enabled

    from automixer_core import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"automixer {__version__}"
    assert not is_progress_bar_enabled()  # no "Generating rows split" bar per benchmark file
