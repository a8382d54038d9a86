"""Groups for corpora too large to score (issue 13).

A text classifier trained on the scored sample predicts the group (and the scores) of every
unscored document, and agreement metrics compare two labellings of the same documents.

- :mod:`.config`: :class:`LabelingConfig` (the ``labeling:`` section), :class:`PredictorConfig`.
- :mod:`.predictor`: :func:`train_group_predictor`, :class:`GroupPredictor`,
  :class:`PredictedGroups`, :class:`PredictorReport`.
- :mod:`.summary`: :func:`label_summary`, per-group counts of a labelled corpus, and
  :func:`accuracy_sentence`, the predictor's holdout figures in words.
- :mod:`.agreement`: :func:`group_agreement`, :func:`macro_f1`, :func:`expected_calibration_error`,
  :func:`confusion_matrix`, :func:`per_label_scores`, :func:`classification_summary`.
"""

from __future__ import annotations

import importlib
from typing import Any

from automixer_core.labels.config import LabelingConfig, PredictorConfig

# scikit-learn loads on first use, not with the run config (which imports this package's config)
_LAZY = {
    "GroupPredictor": "predictor",
    "PredictedGroups": "predictor",
    "PredictorReport": "predictor",
    "train_group_predictor": "predictor",
    "classification_summary": "agreement",
    "confusion_matrix": "agreement",
    "expected_calibration_error": "agreement",
    "group_agreement": "agreement",
    "macro_f1": "agreement",
    "per_label_scores": "agreement",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"automixer_core.labels.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'automixer_core.labels' has no attribute {name!r}")


__all__ = [
    "GroupPredictor",
    "LabelingConfig",
    "PredictedGroups",
    "PredictorConfig",
    "PredictorReport",
    "classification_summary",
    "confusion_matrix",
    "expected_calibration_error",
    "group_agreement",
    "macro_f1",
    "per_label_scores",
    "train_group_predictor",
]
