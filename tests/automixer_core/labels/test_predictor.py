"""The group predictor on synthetic corpora whose groups are (or are not) written in the text."""

from __future__ import annotations

import ast
import importlib.util
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydantic
import pytest

from automixer_core.errors import AutoMixerError, ConfigError, CorpusError, ModelError
from automixer_core.labels import (
    GroupPredictor,
    PredictorConfig,
    PredictorReport,
    train_group_predictor,
)
from automixer_core.labels.predictor import majority_accuracy
from automixer_core.labels.summary import accuracy_sentence

GROUPS = ["arc_easy", "piqa", "residual", "sciq"]
PER_GROUP = 200
SMALL = PredictorConfig(n_features=2**16)
# The synthetic documents are bags of words in random order and the scores are linear in word counts,
# so unigrams are their natural features: random bigrams only take half of each l2-normalised row
# from the unigrams (held-out R² ≈ 0.55 with bigrams, ≈ 0.7-0.85 without).
UNIGRAMS = PredictorConfig(n_features=2**16, ngram_max=1)
NOISE = [f"common{i}" for i in range(400)]
OWN = {g: [f"{g}x{i}" for i in range(40)] for g in GROUPS}
SCORE_WORDS = OWN["piqa"][:8] + NOISE[:24]


def _corpus(seed: int, specific: bool = True, per_group: int = PER_GROUP) -> tuple[list[str], list[str]]:
    """Each document: 30 shared noise words, plus (``specific``) 4-10 words of its group's own list."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    groups: list[str] = []
    for _ in range(per_group):
        for g in GROUPS:
            words = list(rng.choice(NOISE, 30))
            if specific:
                words += list(rng.choice(OWN[g], int(rng.integers(4, 11))))
            rng.shuffle(words)
            texts.append(" ".join(words))
            groups.append(g)
    return texts, groups


def _scores(texts: list[str], seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Two score columns, each a linear function of word counts plus noise (noise sd 0.3)."""
    rng = np.random.default_rng(seed)
    counts = np.array([[t.split().count(w) for w in SCORE_WORDS] for t in texts], dtype=np.float64)
    beta = rng.normal(size=(len(SCORE_WORDS), 2))
    mat = counts @ beta + 0.3 * rng.normal(size=(len(texts), 2))
    return pd.DataFrame(mat, columns=["score__piqa", "score__sciq"]), mat


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str], pd.DataFrame]:
    texts, groups = _corpus(0)
    frame, _ = _scores(texts, 1)
    return texts, groups, frame


@pytest.fixture(scope="module")
def trained(corpus: tuple[list[str], list[str], pd.DataFrame]) -> tuple[GroupPredictor, PredictorReport]:
    texts, groups, frame = corpus
    return train_group_predictor(texts, groups, frame, UNIGRAMS)


def test_learns_groups_from_text(trained: tuple[GroupPredictor, PredictorReport]) -> None:
    predictor, report = trained
    assert report.accuracy >= 0.95
    assert report.macro_f1 >= 0.95
    assert predictor.classes == sorted(GROUPS) and report.classes == sorted(GROUPS)
    # New documents from the same world, never seen in training.
    texts, groups = _corpus(5, per_group=50)
    pred = predictor.predict(texts)
    assert np.mean(pred.groups == np.array(groups, dtype=object)) >= 0.95


@pytest.mark.parametrize("specific", [True, False])
def test_learns_from_the_text_alone(specific: bool) -> None:
    """With word bigrams (the default): the group words make it near perfect; without them it is near
    chance (0.25), so it learns from the text and not from anything else about the documents."""
    texts, groups = _corpus(2, specific=specific)
    _, report = train_group_predictor(texts, groups, config=SMALL)
    if specific:
        assert report.accuracy >= 0.95
    else:
        assert report.accuracy <= 0.4


def test_predicts_scores(
    trained: tuple[GroupPredictor, PredictorReport], corpus: tuple[list[str], list[str], pd.DataFrame]
) -> None:
    predictor, report = trained
    assert set(report.score_r2) == {"score__piqa", "score__sciq"}
    assert all(r2 > 0.5 for r2 in report.score_r2.values()), report.score_r2
    texts, _ = _corpus(6, per_group=50)
    _, truth = _scores(texts, 1)  # same beta (seed 1), new documents and noise
    scores = predictor.predict(texts).scores
    assert scores is not None
    assert list(scores.columns) == ["score__piqa", "score__sciq"] and len(scores) == len(texts)
    for j, col in enumerate(scores.columns):
        resid = np.sum((truth[:, j] - scores[col].to_numpy()) ** 2)
        assert 1 - resid / np.sum((truth[:, j] - truth[:, j].mean()) ** 2) > 0.5


def test_report_is_consistent(trained: tuple[GroupPredictor, PredictorReport]) -> None:
    _, report = trained
    n = len(GROUPS) * PER_GROUP
    assert report.n_train + report.n_holdout == n
    # Stratified: round(0.2 · 200) = 40 held out from every group.
    assert report.n_holdout == 40 * len(GROUPS)
    assert [report.per_group[g]["support"] for g in report.classes] == [40] * len(GROUPS)
    conf = np.array(report.confusion)
    assert conf.shape == (4, 4) and conf.sum() == report.n_holdout
    assert conf.sum(axis=1).tolist() == [40] * 4
    assert report.accuracy == pytest.approx(np.trace(conf) / conf.sum())
    # Every group has 160 training documents: the tie goes to the first name, arc_easy (row 0).
    assert report.majority_accuracy == pytest.approx(conf[0].sum() / conf.sum()) == pytest.approx(0.25)
    assert report.calibrated  # 160 training documents per group ≥ 6
    assert 0.0 <= report.calibration_error <= 0.2
    assert report.seconds > 0
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["confusion"] == report.confusion and d["classes"] == sorted(GROUPS)


def test_probabilities(
    trained: tuple[GroupPredictor, PredictorReport], corpus: tuple[list[str], list[str], pd.DataFrame]
) -> None:
    predictor, _ = trained
    texts = [*corpus[0][:300], "", "completely unseen words here"]
    pred = predictor.predict(texts)
    assert pred.probabilities.shape == (302, 4) and pred.probabilities.dtype == np.float64
    assert np.all(pred.probabilities >= 0)
    np.testing.assert_allclose(pred.probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-9)
    assert pred.groups.shape == (302,)
    assert pred.groups.tolist() == [predictor.classes[i] for i in np.argmax(pred.probabilities, axis=1)]
    np.testing.assert_array_equal(pred.confidence, pred.probabilities.max(axis=1))
    empty = predictor.predict([])
    assert empty.groups.shape == (0,) and empty.probabilities.shape == (0, 4)
    assert empty.scores is not None and list(empty.scores.columns) == ["score__piqa", "score__sciq"]


def test_deterministic_and_round_trip(
    trained: tuple[GroupPredictor, PredictorReport], corpus: tuple[list[str], list[str], pd.DataFrame]
) -> None:
    predictor, report = trained
    texts, groups, frame = corpus
    again, report2 = train_group_predictor(texts, groups, frame, UNIGRAMS)
    probe = texts[::7]
    a, b = predictor.predict(probe), again.predict(probe)
    np.testing.assert_array_equal(a.groups, b.groups)
    np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=0, atol=1e-12)
    assert a.scores is not None and b.scores is not None
    np.testing.assert_allclose(a.scores.to_numpy(), b.scores.to_numpy(), rtol=0, atol=1e-12)
    assert report2.confusion == report.confusion and report2.score_r2 == report.score_r2
    assert again.digest == predictor.digest

    loaded = GroupPredictor.from_bytes(predictor.to_bytes())
    c = loaded.predict(probe)
    np.testing.assert_array_equal(c.groups, a.groups)
    np.testing.assert_array_equal(c.probabilities, a.probabilities)
    assert c.scores is not None
    np.testing.assert_array_equal(c.scores.to_numpy(), a.scores.to_numpy())
    assert loaded.digest == predictor.digest and len(predictor.digest) == 64


def test_returned_predictor_is_refit_on_all_documents(
    trained: tuple[GroupPredictor, PredictorReport], corpus: tuple[list[str], list[str], pd.DataFrame]
) -> None:
    predictor, _ = trained
    texts, groups, frame = corpus
    everything, report = train_group_predictor(
        texts, groups, frame, UNIGRAMS.model_copy(update={"holdout": 0.0})
    )
    assert report.n_holdout == 0 and report.n_train == len(texts)
    assert np.isnan(report.accuracy) and np.isnan(report.calibration_error)
    assert report.to_dict()["accuracy"] is None
    probe = texts[::5]
    np.testing.assert_array_equal(
        everything.predict(probe).probabilities, predictor.predict(probe).probabilities
    )


def test_uncalibrated_when_groups_are_small() -> None:
    texts, groups = _corpus(3, per_group=6)  # holdout 1 per group → 5 training documents < 6
    predictor, report = train_group_predictor(texts, groups, config=SMALL)
    assert not report.calibrated and not predictor.calibrated
    assert report.n_holdout == 4 and report.n_train == 20
    pred = predictor.predict(texts)
    np.testing.assert_allclose(pred.probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-9)
    assert pred.groups.tolist() == [predictor.classes[i] for i in np.argmax(pred.probabilities, axis=1)]
    assert pred.scores is None and predictor.score_model is None


def test_max_chars_and_char_ngrams() -> None:
    texts, groups = _corpus(4, per_group=30)
    cfg = PredictorConfig(n_features=2**12, char_ngrams=True, max_chars=60, predict_scores=False)
    predictor, report = train_group_predictor(texts, groups, pd.DataFrame({"s": np.zeros(len(texts))}), cfg)
    assert report.score_r2 == {}  # predict_scores=False: scores ignored
    long = texts[0] + " " + " ".join(OWN["sciq"] * 5)
    a, b = predictor.predict([long]), predictor.predict([long[:60]])
    np.testing.assert_array_equal(a.probabilities, b.probabilities)  # only the first 60 characters count
    assert predictor.classifier.calibrated_classifiers_[0].estimator.coef_.shape == (4, 2 * 2**12)


def _imports(module: str) -> set[str]:
    """Every module imported by ``module``'s source, following imports of ``automixer_core`` modules."""
    seen: set[str] = set()
    todo = [module]
    found: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                else []
            )
            for n in names:
                found.add(n)
                if n.startswith("automixer_core"):
                    todo.append(n)
    return found


def test_core_does_not_import_orchestration() -> None:
    found = set().union(
        *(_imports(f"automixer_core.labels.{m}") for m in ("predictor", "agreement", "summary", "config"))
    )
    assert {"automixer_core.labels.config", "automixer_core.errors", "sklearn.linear_model"} <= found
    assert not {n for n in found if n.split(".")[0] in {"prefect", "s3fs"}}


# --- errors -------------------------------------------------------------------------------------


def _two_groups(n: int = 6) -> tuple[list[str], list[str]]:
    return [f"doc {i} word{i % 2}" for i in range(2 * n)], ["a", "b"] * n


@pytest.mark.parametrize(
    ("texts", "groups", "scores", "error", "match"),
    [
        ([], [], None, AutoMixerError, "No scored documents"),
        (["x", "y", "z"], ["a", "b"], None, AutoMixerError, "3 texts but 2 groups"),
        (["x"] * 8, ["only"] * 8, None, AutoMixerError, "one group, 'only'"),
        (["x", None], ["a", "b"], None, CorpusError, "Document 1 is NoneType"),
        ("just one text", ["a"], None, CorpusError, "single string"),
        (["x", "y"], ["a", float("nan")], None, AutoMixerError, "group of document 1 is nan"),
    ],
)
def test_input_errors(texts: Any, groups: Any, scores: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        train_group_predictor(texts, groups, scores, SMALL)


def test_groups_below_minimum_are_named() -> None:
    texts, groups = _two_groups(6)
    texts += ["t1", "t2", "t3"]
    groups += ["rare", "rarer", "rare"]
    with pytest.raises(ConfigError, match="min_docs_per_group=5") as info:
        train_group_predictor(texts, groups, config=SMALL)
    msg = str(info.value)
    assert "'rare' (2 documents)" in msg and "'rarer' (1 documents)" in msg and "'a'" not in msg
    assert "score more documents or lower min_docs_per_group" in msg
    predictor, _ = train_group_predictor(
        texts, groups, config=SMALL.model_copy(update={"min_docs_per_group": 1})
    )
    assert predictor.classes == ["a", "b", "rare", "rarer"]


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (pd.DataFrame({"s": np.zeros(5)}), "scores frame has 5 rows but there are 12 texts"),
        (pd.DataFrame({"s": [0.0] * 11 + [np.nan]}), r"row 11, column 's'"),
        (pd.DataFrame({"s": np.zeros(12), "t": [0.0, np.inf] + [0.0] * 10}), r"row 1, column 't'"),
        (pd.DataFrame({"s": ["a"] * 12}), r"Score columns \['s'\] are not all numeric"),
        (pd.DataFrame(index=range(12)), "no columns"),
    ],
)
def test_score_frame_errors(frame: pd.DataFrame, match: str) -> None:
    texts, groups = _two_groups(6)
    with pytest.raises(AutoMixerError, match=match):
        train_group_predictor(texts, groups, frame, SMALL)


def test_config_is_strict() -> None:
    with pytest.raises(pydantic.ValidationError, match="n_fetures"):
        PredictorConfig(n_fetures=10)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError, match="holdout"):
        PredictorConfig(holdout=1.0)
    assert all(f.description for f in PredictorConfig.model_fields.values())


def test_from_bytes_refuses_other_versions_and_garbage() -> None:
    texts, groups = _two_groups(6)
    predictor, _ = train_group_predictor(texts, groups, config=SMALL)
    outer = pickle.loads(predictor.to_bytes())
    with pytest.raises(ModelError, match=r"scikit-learn '0\.0\.1'.*train the predictor again"):
        GroupPredictor.from_bytes(pickle.dumps({**outer, "sklearn": "0.0.1"}))
    with pytest.raises(ModelError, match="format version 99"):
        GroupPredictor.from_bytes(pickle.dumps({**outer, "version": 99}))
    with pytest.raises(ModelError, match="not a pickled group predictor"):
        GroupPredictor.from_bytes(b"not a pickle")
    with pytest.raises(ModelError, match="no group predictor"):
        GroupPredictor.from_bytes(pickle.dumps({"format": "something else"}))


def test_majority_accuracy_answers_the_largest_training_group() -> None:
    """The baseline the report gives next to the accuracy, against hand counts."""
    train = np.array(["b", "a", "b", "c", "b", "a"], dtype=object)  # b is the largest (3)
    holdout = np.array(["b", "a", "c", "b", "b"], dtype=object)
    assert majority_accuracy(train, holdout) == pytest.approx(3 / 5)
    tie = np.array(["c", "a", "c", "a"], dtype=object)  # a tie: the first name, a
    assert majority_accuracy(tie, holdout) == pytest.approx(1 / 5)
    assert np.isnan(majority_accuracy(train, holdout[:0])) and np.isnan(majority_accuracy(train[:0], holdout))


def test_accuracy_sentence_from_stored_reports(
    trained: tuple[GroupPredictor, PredictorReport], corpus: tuple[list[str], list[str], pd.DataFrame]
) -> None:
    """The words `automixer label` and the label artifact print, from a report as stored (to_dict):
    with its baseline; without it (a report stored before it was recorded); without a holdout."""
    _, report = trained
    stored = report.to_dict()
    assert accuracy_sentence(stored) == (
        f"held-out accuracy {100 * report.accuracy:.1f}% (the largest group alone: 25.0%), "
        f"macro-F1 {100 * report.macro_f1:.1f}% on 160 scored documents (640 to train)"
    )
    older = {k: v for k, v in stored.items() if k != "majority_accuracy"}
    assert accuracy_sentence(older).startswith(f"held-out accuracy {100 * report.accuracy:.1f}%, macro-F1")
    texts, groups, _ = corpus
    _, none_held = train_group_predictor(texts, groups, config=UNIGRAMS.model_copy(update={"holdout": 0.0}))
    no_holdout = none_held.to_dict()
    assert no_holdout["accuracy"] is None and no_holdout["majority_accuracy"] is None
    assert accuracy_sentence(no_holdout) == (
        "no held-out documents, so no accuracy (800 to train; labeling.predictor.holdout > 0 measures it)"
    )
