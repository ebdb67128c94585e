"""Classical beat classifiers as imblearn pipelines: elastic-net LR, random forest, LightGBM.

Every pipeline starts from raw beats (n, 187), so a fitted one is a complete predictor:

``[features → impute → select]`` (``features`` input) → ``[SMOTE]`` (``smote``) → classifier.

The context inputs (``raw+rr``, ``features+rr``) start from beats with their raw RR context
appended, (n, 187 + c) (``ecgops.features.context.model_input``): their first step,
:class:`ContextFeatures`, puts the raw samples (``context``) or the beat's features
(``features``) beside the normalised context (``context.normalise``).

LR wraps ``scale → [SMOTE] → LogisticRegression(saga, elastic net)`` in a grid search over
``C`` and ``l1_ratio`` on folds of the training part, so SMOTE and the scaler are fitted
inside each inner training fold and never see the inner validation fold. SMOTE is a sampler:
imblearn applies it in ``fit`` only, never when predicting. ``class_weight`` gives the
classifiers balanced class weights instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from ecgops.config import Config
from ecgops.features.tsfeatures import FeatureExtractor, RelevanceSelector
from ecgops.models import CLASSICAL_INPUTS, CLASSICAL_MODELS, split_context
from ecgops.schema import BEAT_LEN, CONTEXT_COLUMNS, SIGNAL_COLUMNS

MODELS = CLASSICAL_MODELS
INPUTS = CLASSICAL_INPUTS
IMBALANCE = ("smote", "class_weight", "none")


class ContextFeatures(TransformerMixin, BaseEstimator):
    """Beats with their raw RR context, (n, 187 + c), in; beat part beside the context out.

    Stateless: the beat part is the 187 samples (no ``extractor``) or the extractor's features
    of them; the context is normalised by :func:`ecgops.features.context.normalise_context`.

    Args:
        extractor: the feature extractor (``features+rr``), or None (``raw+rr``).
        normalise: ``context.normalise`` (``none``, ``record_mean``, ``window_mean``).
    """

    def __init__(self, extractor: FeatureExtractor | None = None, normalise: str = "none") -> None:
        self.extractor = extractor
        self.normalise = normalise

    def fit(self, x: Any, y: Any = None) -> ContextFeatures:
        """Nothing to learn; records the input width."""
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def transform(self, x: Any) -> np.ndarray:
        """The beat part beside the normalised context, float64."""
        x = np.asarray(x, dtype=np.float64)
        beats = x[:, :BEAT_LEN]
        return self.combine(beats if self.extractor is None else self.extractor.transform(beats), x)

    def combine(self, beat_part: np.ndarray, x: Any) -> np.ndarray:
        """``beat_part`` (samples or precomputed features of ``x``'s beats) beside its context.

        Args:
            beat_part: (n, m) samples or features of the beats of ``x``.
            x: the input rows (n, 187 + c).

        Returns:
            (n, m + len(CONTEXT_COLUMNS)) float64.
        """
        from ecgops.features.context import normalise_context

        context = normalise_context(np.asarray(x)[:, BEAT_LEN:], self.normalise)
        return np.hstack([np.asarray(beat_part, dtype=np.float64), context])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The beat part's names (samples or features), then the context columns."""
        left = SIGNAL_COLUMNS if self.extractor is None else self.extractor.get_feature_names_out()
        return np.asarray(list(left) + list(CONTEXT_COLUMNS), dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return True


class ClassAwareSMOTE(SMOTE):
    """SMOTE that lowers ``k_neighbors`` for a class with few beats instead of failing.

    A class with ``n`` training beats uses ``min(k_neighbors, n - 1)`` neighbours; a class with
    a single beat is not oversampled. (Tiny subsets and CV folds of rare MIT-BIH classes.)
    """

    def _fit_resample(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x_out, y_out = [X.copy()], [y.copy()]
        for label, n_samples in self.sampling_strategy_.items():
            members = np.flatnonzero(y == label)
            if n_samples == 0 or len(members) < 2:
                continue
            x_class = X[members]
            k = min(self.k_neighbors, len(members) - 1)
            nn = NearestNeighbors(n_neighbors=k + 1).fit(x_class)
            neighbours = nn.kneighbors(x_class, return_distance=False)[:, 1:]
            x_new, y_new = self._make_samples(
                x_class, y.dtype, label, x_class, neighbours, n_samples, 1.0
            )
            x_out.append(x_new)
            y_out.append(y_new)
        return np.vstack(x_out), np.hstack(y_out)


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ValueError naming them."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(choices)}")
    return value


def feature_steps(cfg: Config, context: bool = False) -> list[tuple[str, Any]]:
    """Raw beats → features (configured set) → median imputation → relevance filter.

    With ``context`` the first step is :class:`ContextFeatures`: features beside the context.
    """
    extractor: Any = FeatureExtractor.from_config(cfg)
    if context:
        extractor = ContextFeatures(extractor, cfg.context.normalise)
    steps: list[tuple[str, Any]] = [
        ("features", extractor),
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
    ]
    if cfg.features.selection == "relevance":
        steps.append(("select", RelevanceSelector(cfg.features.select_fdr)))
    return steps


def smote(cfg: Config) -> ClassAwareSMOTE:
    """The configured SMOTE sampler (seeded)."""
    return ClassAwareSMOTE(k_neighbors=cfg.classical.smote_k_neighbors, random_state=cfg.seed)


def logistic_regression(cfg: Config, imbalance: str, grouped: bool = False) -> GridSearchCV:
    """Elastic-net LR (saga) with C and l1_ratio chosen by stratified CV on the training part.

    The searched estimator is ``scale → [SMOTE] → LogisticRegression``, so the scaler and
    SMOTE are refitted inside every inner training fold. Scored by balanced accuracy.
    ``grouped`` (the patient scheme): ``StratifiedGroupKFold``, so no patient / record is in
    an inner training and scoring fold at once; ``fit`` then needs ``groups`` (in a pipeline:
    ``clf__groups``).
    """
    from sklearn.linear_model import LogisticRegression

    lr_cfg = cfg.classical.lr
    inner: list[tuple[str, Any]] = [("scale", StandardScaler())]
    if imbalance == "smote":
        inner.append(("smote", smote(cfg)))
    inner.append(
        (
            "lr",
            LogisticRegression(
                solver="saga",
                max_iter=lr_cfg.max_iter,
                tol=lr_cfg.tol,
                class_weight="balanced" if imbalance == "class_weight" else None,
                random_state=cfg.seed,
            ),
        )
    )
    grid = {"lr__C": list(lr_cfg.Cs), "lr__l1_ratio": list(lr_cfg.l1_ratios)}
    kfold = StratifiedGroupKFold if grouped else StratifiedKFold
    folds = kfold(n_splits=lr_cfg.cv, shuffle=True, random_state=cfg.seed)
    return GridSearchCV(
        Pipeline(inner),
        grid,
        cv=folds,
        scoring="balanced_accuracy",
        n_jobs=cfg.classical.n_jobs,
        refit=True,
        error_score="raise",
    )


def random_forest(cfg: Config, imbalance: str) -> Any:
    """Random forest from ``classical.rf`` (seeded)."""
    from sklearn.ensemble import RandomForestClassifier

    rf = cfg.classical.rf
    return RandomForestClassifier(
        n_estimators=rf.n_estimators,
        max_depth=rf.max_depth,
        min_samples_leaf=rf.min_samples_leaf,
        class_weight="balanced" if imbalance == "class_weight" else None,
        n_jobs=cfg.classical.n_jobs,
        random_state=cfg.seed,
    )


def lightgbm(cfg: Config, imbalance: str, n_classes: int) -> Any:
    """LightGBM from ``classical.lgbm`` (binary or multiclass; deterministic, seeded)."""
    from lightgbm import LGBMClassifier

    gb = cfg.classical.lgbm
    return LGBMClassifier(
        objective="binary" if n_classes == 2 else "multiclass",
        n_estimators=gb.n_estimators,
        learning_rate=gb.learning_rate,
        num_leaves=gb.num_leaves,
        subsample=gb.subsample,
        subsample_freq=gb.subsample_freq,
        colsample_bytree=gb.colsample_bytree,
        max_bin=gb.max_bin,
        class_weight="balanced" if imbalance == "class_weight" else None,
        random_state=cfg.seed,
        n_jobs=cfg.classical.n_jobs,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )


def build_pipeline(
    cfg: Config,
    model: str,
    input: str,
    n_classes: int,
    imbalance: str | None = None,
    grouped: bool = False,
) -> Pipeline:
    """An unfitted pipeline from raw beats (n, 187) to class probabilities.

    Args:
        cfg: configuration (``classical``, ``features``, ``context``, ``seed``).
        model: ``lr``, ``rf`` or ``lgbm``.
        input: ``raw`` (the 187 samples) or ``features`` (extracted from the stripped beat);
            ``raw+rr`` / ``features+rr``: the same beside the RR context (the pipeline then
            takes (n, 187 + c) rows, see the module docstring).
        n_classes: number of classes (2 for PTB, 5 for MIT-BIH).
        imbalance: ``smote``, ``class_weight`` or ``none`` (default ``classical.imbalance``).
        grouped: the LR grid search uses grouped folds (fit with ``clf__groups``).

    Returns:
        An imblearn Pipeline; steps ``features/impute/select`` (features input), ``context``
        (``raw+rr``), ``smote`` (RF/LightGBM with SMOTE) and ``clf``.
    """
    check_choice(model, MODELS, "model")
    check_choice(input, INPUTS, "input")
    imbalance = check_choice(imbalance or cfg.classical.imbalance, IMBALANCE, "imbalance")
    base, context = split_context(input)
    steps: list[tuple[str, Any]]
    if base == "features":
        steps = feature_steps(cfg, context)
    else:
        steps = [("context", ContextFeatures(None, cfg.context.normalise))] if context else []
    if model == "lr":
        steps.append(("clf", logistic_regression(cfg, imbalance, grouped)))
        return Pipeline(steps)
    if imbalance == "smote":
        steps.append(("smote", smote(cfg)))
    clf = random_forest(cfg, imbalance) if model == "rf" else lightgbm(cfg, imbalance, n_classes)
    steps.append(("clf", clf))
    return Pipeline(steps)


def head_and_tail(pipeline: Pipeline) -> tuple[Pipeline | None, Pipeline]:
    """Split off the stateless feature extractor: (extractor step or None, the rest).

    The rest shares its step objects with ``pipeline``: fitting it on precomputed features
    fits ``pipeline``, which still predicts from raw beats.
    """
    if pipeline.steps[0][0] == "features":
        return pipeline[:1], pipeline[1:]
    return None, pipeline


def predict_proba_full(pipeline: Any, x: Any, n_classes: int) -> np.ndarray:
    """Class probabilities with one column per class ``0..n_classes-1``.

    A class absent from the training part gets probability 0.
    """
    proba = np.asarray(pipeline.predict_proba(x), dtype=np.float64)
    classes = np.asarray(pipeline.classes_, dtype=np.int64)
    if proba.shape[1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    out = np.zeros((proba.shape[0], n_classes))
    out[:, classes] = proba
    return out


def describe_fit(pipeline: Pipeline) -> dict[str, Any]:
    """Facts about a fitted pipeline worth recording (chosen LR params, kept features)."""
    out: dict[str, Any] = {}
    clf = pipeline.named_steps["clf"]
    if isinstance(clf, GridSearchCV):
        out["lr_best_C"] = float(clf.best_params_["lr__C"])
        out["lr_best_l1_ratio"] = float(clf.best_params_["lr__l1_ratio"])
        out["lr_cv_balanced_accuracy"] = float(clf.best_score_)
    if "features" in pipeline.named_steps:
        out["n_features_extracted"] = int(
            len(pipeline.named_steps["features"].get_feature_names_out())
        )
    if "select" in pipeline.named_steps:
        out["n_features_selected"] = int(pipeline.named_steps["select"].support_.sum())
    return out
