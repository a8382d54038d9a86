"""A cheap text classifier that predicts the group (and the scores) of documents nobody scored.

A remix scores a *sample* of the corpus: each scored document gets per-benchmark influence scores
and a group (``aggregation``). For a corpus too large to score whole, ``train_group_predictor``
fits a linear model on the scored sample that maps a document's text to its group, and optionally
to each score column; ``GroupPredictor.predict`` then labels any number of unscored documents on
CPU. The choices, all ours:

- Features: scikit-learn's ``HashingVectorizer`` (word 1..``ngram_max``-grams, lowercased,
  ``alternate_sign=False``, rows l2-normalised) on each text cut to its first ``max_chars``
  characters. It is stateless: a new shard is featurised without any fitted vocabulary. With
  ``char_ngrams`` a second hashing vectorizer of ``char_wb`` 3-5-grams (its own ``n_features``
  columns, its own l2 norm) is stacked beside it.
- Split: per group, the documents are permuted by ``numpy.random.default_rng(seed)`` (groups in
  sorted order, one generator) and the first h_g = min(max(1, ⌊holdout·n_g + 0.5⌋), n_g − 1) go to
  the holdout (h_g = 0 for a group of one document, or when ``holdout`` = 0). So every group with
  ≥ 2 documents is both trained on and evaluated.
- Classifier: ``SGDClassifier(loss="log_loss", alpha, max_iter=epochs, tol=None,
  random_state=seed)`` (one-vs-rest for more than two groups). When every group has ≥ 6 training
  documents (3 folds × 2) its probabilities are calibrated by ``CalibratedClassifierCV(method=
  "sigmoid", cv=3, ensemble=False)``: the sigmoids are fitted on out-of-fold decisions and one
  classifier is fitted on all training documents, so prediction costs one linear model, not three.
  Otherwise the SGD log-loss probabilities are used. The decision is taken once, on the training
  split, and kept for the refit, so the report's ECE describes the kind of model returned.
- Groups: the argmax of the probabilities (ties to the first group in sorted order), so
  ``groups`` always agrees with ``probabilities``.
- Scores: one ``Ridge(alpha=score_alpha, solver="sparse_cg")`` on the same features, fitted on all
  score columns at once (Ridge solves each column independently; conjugate gradients on the sparse
  matrix are fast and have no randomness). Each column is centred and divided by its standard
  deviation first (a constant column is predicted as its constant).
- Refit: after the holdout evaluation the predictor returned is fitted again on *every* scored
  document (train + holdout), since scored documents are expensive and a predictor trained on more
  of them is better; the report's numbers are those of the train-split model on the holdout, an
  honest (slightly pessimistic) estimate for the returned one.
- Storage: the fitted linear weights are kept as sparse matrices (hashed features never seen in
  training keep weight 0), so a predictor with 2**20 features stays small in memory and in
  ``to_bytes``. ``to_bytes`` is a pickle: load only bytes you wrote yourself.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import Ridge, SGDClassifier

from automixer_core.errors import AutoMixerError, ConfigError, ModelError
from automixer_core.labels.agreement import classification_summary, expected_calibration_error
from automixer_core.labels.config import PredictorConfig
from automixer_core.labels.features import Featurizer
from automixer_core.labels.inputs import check_groups, check_scores, check_texts, holdout_split

#: What turns texts into their (N, d) mean hidden states (features: hidden_state or both).
Embed = Callable[[list[str]], np.ndarray]

FORMAT = "automixer.group_predictor"
FORMAT_VERSION = 2  # 2: features (hidden states), embedding_mean, checkpoint
CALIBRATION_FOLDS = 3
ECE_BINS = 10


@dataclass
class PredictedGroups:
    """What ``GroupPredictor.predict`` returns for N texts, G groups and B score columns.

    Attributes:
        groups: the predicted group of each text, shape (N,), dtype object (str).
        probabilities: shape (N, G) float64, rows sum to 1, columns in ``GroupPredictor.classes``.
        confidence: the max probability of each row, shape (N,).
        scores: (N, B) predicted score columns (index 0..N-1), or None without a score model.
    """

    groups: np.ndarray
    probabilities: np.ndarray
    confidence: np.ndarray
    scores: pd.DataFrame | None = None


@dataclass
class PredictorReport:
    """How the predictor fitted on the training split did on the holdout.

    Attributes:
        n_train, n_holdout: documents in each split.
        classes: the G groups, sorted.
        accuracy, macro_f1: on the holdout (macro over the groups present in it); NaN without one.
        per_group: group → ``{precision, recall, f1, support}`` on the holdout (0.0 where undefined).
        confusion: G × G counts, rows = true group, columns = predicted, in ``classes`` order.
        calibration_error: ECE of the max probability on the holdout, 10 equal-width bins.
        calibrated: whether the probabilities are sigmoid-calibrated (see the module docstring).
        score_r2: score column → R² on the holdout (NaN where the holdout column is constant).
        majority_accuracy: the holdout accuracy of always answering the training split's largest
            group (ties: the first by name), what ``accuracy`` must beat to say the text tells the
            groups apart; NaN without a holdout.
        seconds: wall time of the whole training call (both fits and the evaluation).
    """

    n_train: int
    n_holdout: int
    classes: list[str]
    accuracy: float
    macro_f1: float
    per_group: dict[str, dict[str, float]]
    confusion: list[list[int]]
    calibration_error: float
    calibrated: bool
    score_r2: dict[str, float] = field(default_factory=dict)
    majority_accuracy: float = float("nan")
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (NaN becomes None)."""
        return _json_safe(asdict(self))


def majority_accuracy(train: np.ndarray, holdout: np.ndarray) -> float:
    """Accuracy on ``holdout`` [H] of answering the most frequent label of ``train`` [N] (ties: the
    first by name) for every document; NaN when either is empty."""
    if len(train) == 0 or len(holdout) == 0:
        return float("nan")
    counts = Counter(str(g) for g in train)
    top = min(counts, key=lambda g: (-counts[g], g))
    return float(np.mean(np.asarray(holdout, dtype=object) == top))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class _ScoreModel:
    """Linear score heads: scores (N, B) = X (N, F) @ coef.T (F, B) + intercept, then unscaled."""

    columns: list[str]
    coef: sp.csr_matrix  # (B, F), in standardised units
    intercept: np.ndarray  # (B,)
    mean: np.ndarray  # (B,)
    scale: np.ndarray  # (B,)

    def predict(self, x: sp.csr_matrix) -> np.ndarray:
        z = np.asarray((x @ self.coef.T).todense(), dtype=np.float64) + self.intercept
        out: np.ndarray = z * self.scale + self.mean
        return out


@dataclass
class GroupPredictor:
    """A fitted group predictor (see the module docstring for what is fitted).

    Attributes:
        config: the config it was trained with.
        classes: the G groups, sorted; the column order of ``probabilities``.
        classifier: the fitted scikit-learn classifier (``SGDClassifier`` or
            ``CalibratedClassifierCV`` around one).
        calibrated: whether ``classifier`` is the calibrated one.
        score_columns: the B score columns predicted (empty without a score model).
        score_model: the fitted score heads, or None.
    """

    config: PredictorConfig
    classes: list[str]
    classifier: Any
    calibrated: bool
    score_columns: list[str] = field(default_factory=list)
    score_model: _ScoreModel | None = None
    embedding_mean: np.ndarray | None = None
    checkpoint: dict[str, Any] | None = None
    _featurizer: Featurizer | None = field(default=None, repr=False, compare=False)

    @property
    def needs_embedding(self) -> bool:
        """Whether ``predict`` needs ``embed`` (features ``hidden_state`` or ``both``)."""
        return self.config.features in ("hidden_state", "both")

    def _features(self, texts: list[str], embed: Embed | None) -> sp.csr_matrix:
        if self._featurizer is None:
            self._featurizer = Featurizer(self.config, self.embedding_mean)
        embedded = embed(texts) if embed is not None and self.needs_embedding else None
        return self._featurizer.transform(texts, embedded)

    def predict(self, texts: Sequence[str], embed: Embed | None = None) -> PredictedGroups:
        """Group, group probabilities and (with a score model) scores of each text.

        Args:
            texts: N documents (str).
            embed: texts → (N, d) mean hidden states of ``checkpoint``'s model; needed with
                features ``hidden_state`` or ``both``.

        Returns:
            ``PredictedGroups`` with ``groups`` (N,), ``probabilities`` (N, G), ``confidence`` (N,)
            and ``scores`` (N, B) or None.
        """
        docs = check_texts(texts)
        g = len(self.classes)
        if not docs:
            empty_scores = (
                pd.DataFrame({c: np.zeros(0) for c in self.score_columns})
                if self.score_model is not None
                else None
            )
            return PredictedGroups(
                groups=np.empty(0, dtype=object),
                probabilities=np.zeros((0, g)),
                confidence=np.zeros(0),
                scores=empty_scores,
            )
        return self._predict_matrix(self._features(docs, embed))

    def _predict_matrix(self, x: sp.csr_matrix) -> PredictedGroups:
        proba = _class_proba(self.classifier, x, self.classes)
        top = np.argmax(proba, axis=1)
        scores = None
        if self.score_model is not None:
            scores = pd.DataFrame(self.score_model.predict(x), columns=list(self.score_columns))
        return PredictedGroups(
            groups=np.asarray(self.classes, dtype=object)[top],
            probabilities=proba,
            confidence=proba[np.arange(x.shape[0]), top],
            scores=scores,
        )

    def to_bytes(self) -> bytes:
        """The predictor as bytes: a pickle with the format version and scikit-learn version.

        Equal predictors give equal bytes (so ``digest`` identifies one): the payload is pickled,
        loaded and pickled again, since a freshly fitted model shares numpy dtype objects
        differently from a loaded one and that sharing shows in the pickle.
        """
        first = pickle.dumps(
            GroupPredictor(
                config=self.config,
                classes=self.classes,
                classifier=self.classifier,
                calibrated=self.calibrated,
                score_columns=self.score_columns,
                score_model=self.score_model,
                embedding_mean=self.embedding_mean,
                checkpoint=self.checkpoint,
            ),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        payload = pickle.dumps(pickle.loads(first), protocol=pickle.HIGHEST_PROTOCOL)
        header = {"format": FORMAT, "version": FORMAT_VERSION, "sklearn": sklearn.__version__}
        return pickle.dumps({**header, "payload": payload}, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes) -> GroupPredictor:
        """Load what ``to_bytes`` wrote (only from a trusted source: it is a pickle).

        Raises:
            ModelError: the bytes are not a group predictor, were written by another format
                version, or by another scikit-learn version.
        """
        try:
            outer = pickle.loads(data)
        except Exception as exc:
            raise ModelError(
                f"The bytes are not a pickled group predictor ({type(exc).__name__}: {exc})",
                expected=f"the output of GroupPredictor.to_bytes ({FORMAT!r})",
                fix="train the predictor again",
            ) from exc
        if not isinstance(outer, dict) or outer.get("format") != FORMAT:
            raise ModelError(
                "The bytes hold no group predictor",
                expected=f"the output of GroupPredictor.to_bytes ({FORMAT!r})",
                fix="train the predictor again",
            )
        if outer.get("version") != FORMAT_VERSION:
            raise ModelError(
                f"The group predictor has format version {outer.get('version')!r}",
                expected=f"format version {FORMAT_VERSION}",
                fix="train the predictor again",
            )
        if outer.get("sklearn") != sklearn.__version__:
            raise ModelError(
                f"The group predictor was saved with scikit-learn {outer.get('sklearn')!r}, "
                f"this environment has {sklearn.__version__!r}",
                expected="the same scikit-learn version (its pickles are not portable across versions)",
                fix="train the predictor again",
            )
        predictor = pickle.loads(outer["payload"])
        if not isinstance(predictor, cls):
            raise ModelError(
                f"The payload is a {type(predictor).__name__}",
                expected="a GroupPredictor",
                fix="train the predictor again",
            )
        return predictor

    @property
    def digest(self) -> str:
        """sha256 (hex) of ``to_bytes()``: identifies the fitted predictor."""
        return hashlib.sha256(self.to_bytes()).hexdigest()


def _class_proba(classifier: Any, x: sp.csr_matrix, classes: list[str]) -> np.ndarray:
    """Probabilities (N, G) in ``classes`` order, rows renormalised to sum to 1."""
    raw = np.asarray(classifier.predict_proba(x), dtype=np.float64)
    order = [list(classifier.classes_).index(c) for c in classes]
    proba = raw[:, order]
    total = proba.sum(axis=1, keepdims=True)
    bad = ~(np.isfinite(total) & (total > 0))
    proba = np.where(bad, 1.0 / len(classes), proba / np.where(bad, 1.0, total))
    out: np.ndarray = proba
    return out


def _sparse_coef(classifier: Any) -> None:
    """Store the fitted SGD weights as sparse matrices (unseen hashed features keep weight 0)."""
    if isinstance(classifier, SGDClassifier):
        classifier.sparsify()
    else:
        for calibrated in classifier.calibrated_classifiers_:
            calibrated.estimator.sparsify()


def _fit_classifier(x: sp.csr_matrix, y: np.ndarray, config: PredictorConfig, calibrate: bool) -> Any:
    sgd = SGDClassifier(
        loss="log_loss", alpha=config.alpha, max_iter=config.epochs, tol=None, random_state=config.seed
    )
    model: Any = (
        CalibratedClassifierCV(sgd, method="sigmoid", cv=CALIBRATION_FOLDS, ensemble=False)
        if calibrate
        else sgd
    )
    model.fit(x, y.astype(str))
    _sparse_coef(model)
    return model


def _fit_scores(
    x: sp.csr_matrix, mat: np.ndarray, columns: list[str], config: PredictorConfig
) -> _ScoreModel:
    mean = mat.mean(axis=0)
    std = mat.std(axis=0)
    scale = np.where(std > 0, std, 1.0)
    ridge = Ridge(alpha=config.score_alpha, solver="sparse_cg", fit_intercept=True)
    ridge.fit(x, (mat - mean) / scale)
    coef = np.atleast_2d(ridge.coef_)
    intercept = np.atleast_1d(np.asarray(ridge.intercept_, dtype=np.float64))
    return _ScoreModel(columns=columns, coef=sp.csr_matrix(coef), intercept=intercept, mean=mean, scale=scale)


def _fit(
    x: sp.csr_matrix,
    y: np.ndarray,
    classes: list[str],
    score_mat: np.ndarray | None,
    columns: list[str],
    config: PredictorConfig,
    calibrate: bool,
) -> GroupPredictor:
    return GroupPredictor(
        config=config,
        classes=classes,
        classifier=_fit_classifier(x, y, config, calibrate),
        calibrated=calibrate,
        score_columns=columns if score_mat is not None else [],
        score_model=_fit_scores(x, score_mat, columns, config) if score_mat is not None else None,
    )


def _r2(true: np.ndarray, pred: np.ndarray) -> float:
    ss_tot = float(np.sum((true - true.mean()) ** 2))
    if len(true) == 0 or ss_tot == 0:
        return float("nan")
    return 1.0 - float(np.sum((true - pred) ** 2)) / ss_tot


def train_group_predictor(
    texts: Sequence[str],
    groups: Sequence[str],
    scores: pd.DataFrame | None = None,
    config: PredictorConfig | None = None,
    *,
    embed: Embed | None = None,
    checkpoint: dict[str, Any] | None = None,
) -> tuple[GroupPredictor, PredictorReport]:
    """Fit a group predictor on scored documents, evaluate it on a holdout, refit on all.

    Args:
        texts: the N scored documents' texts.
        groups: their N groups (str), as aggregation assigned them.
        scores: optional (N, B) frame of their score columns, rows in ``texts`` order (its index
            is ignored); used only with ``config.predict_scores``.
        config: the predictor's settings (default ``PredictorConfig()``).
        embed: texts → (N, d) mean hidden states, with features ``hidden_state`` or ``both``
            (called once, on all N texts; their mean centres the features).
        checkpoint: the checkpoint ``embed`` runs (kept in the predictor, so whoever labels
            with it loads the same model).

    Returns:
        The predictor fitted on all N documents, and the report of the one fitted on the training
        split, on the holdout.

    Raises:
        CorpusError: a text is not a str.
        ConfigError: a group has fewer than ``min_docs_per_group`` documents.
        AutoMixerError: no documents, lengths differ, a single group, a bad scores frame.
    """
    start = time.perf_counter()
    cfg = config if config is not None else PredictorConfig()
    docs = check_texts(texts)
    if not docs:
        raise AutoMixerError(
            "No scored documents (texts is empty)",
            expected="the texts and groups of at least two groups of scored documents",
            fix="score a sample of the corpus first",
        )
    y = check_groups(groups, len(docs))
    counts = Counter(y.tolist())
    classes = sorted(counts)
    if len(classes) < 2:
        raise AutoMixerError(
            f"All {len(docs)} scored documents are in one group, {classes[0]!r}",
            expected="at least two groups to tell apart",
            fix=f"score more documents, or give every unscored document the group {classes[0]!r}",
        )
    small = {g: c for g, c in sorted(counts.items()) if c < cfg.min_docs_per_group}
    if small:
        listed = ", ".join(f"{g!r} ({c} documents)" for g, c in small.items())
        raise ConfigError(
            f"Group(s) below min_docs_per_group={cfg.min_docs_per_group}: {listed}",
            expected=f"at least {cfg.min_docs_per_group} scored documents in every group",
            fix="score more documents or lower min_docs_per_group",
        )
    columns: list[str] = []
    score_mat: np.ndarray | None = None
    if scores is not None and cfg.predict_scores:
        columns, score_mat = check_scores(scores, len(docs))

    embedded = None
    if cfg.features in ("hidden_state", "both"):
        if embed is None:
            raise ConfigError(
                f"features: {cfg.features} needs the proxy's hidden states",
                fix="pass embed= (texts → mean hidden states), or use features: ngrams",
            )
        embedded = np.asarray(embed(docs), dtype=np.float64)
    mean = embedded.mean(axis=0) if embedded is not None else None
    featurizer = Featurizer(cfg, mean)
    x = featurizer.transform(docs, embedded)
    tr, ho = holdout_split(y, cfg.holdout, cfg.seed)
    calibrate = min(Counter(y[tr].tolist()).values()) >= CALIBRATION_FOLDS * 2

    fitted = _fit(
        x[tr], y[tr], classes, score_mat[tr] if score_mat is not None else None, columns, cfg, calibrate
    )
    fitted._featurizer = featurizer
    if len(ho):
        pred = fitted._predict_matrix(x[ho])
        summary = classification_summary(y[ho], pred.groups, classes)
        ece = expected_calibration_error(pred.confidence, pred.groups == y[ho], ECE_BINS)
        r2 = {}
        if pred.scores is not None and score_mat is not None:
            r2 = {c: _r2(score_mat[ho, j], pred.scores[c].to_numpy()) for j, c in enumerate(columns)}
        final = _fit(x, y, classes, score_mat, columns, cfg, calibrate)
        final._featurizer = featurizer
    else:
        summary = classification_summary([], [], classes)
        ece = float("nan")
        r2 = {c: float("nan") for c in columns}
        final = fitted
    final.embedding_mean, final.checkpoint = mean, checkpoint
    final._featurizer = Featurizer(cfg, mean)

    report = PredictorReport(
        n_train=len(tr),
        n_holdout=len(ho),
        classes=list(classes),
        accuracy=summary["accuracy"],
        macro_f1=summary["macro_f1"],
        per_group=summary["per_group"],
        confusion=summary["confusion"],
        calibration_error=ece,
        calibrated=calibrate,
        score_r2=r2,
        majority_accuracy=majority_accuracy(y[tr], y[ho]),
        seconds=time.perf_counter() - start,
    )
    return final, report
