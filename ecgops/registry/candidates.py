"""The runs that compete for registration: same task, scheme, profile, data and split.

Validation metrics compare only between runs that were trained, validated and tested on the
same rows. A :class:`RunScope` names those rows by the registering pipeline's profile, data
version (md5 of the current beat table) and split version (md5 of the current split
assignments), the ``profile`` / ``data_version`` / ``split_version`` tags every run carries
(:func:`ecgops.tracking.provenance_tags`). :func:`find_candidates` lists the finished runs of a
task's experiment in one scheme and one scope that logged a model, best validation metric
first; runs of another profile, an older beat table or another split never compete. Each
registered model kind has its own candidates: runs tagged ``ecgops.needs_context = true`` (their
model reads the RR context) compete for the ``context`` model, the others (and runs from before
the tag) for the ``morphology`` one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecgops.config import Config
from ecgops.registry.client import CONTEXT, MODEL_NAME, MORPHOLOGY

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

SHORT_HASH = 8
"""Characters of an md5 shown in messages."""


@dataclass(frozen=True)
class RunScope:
    """What makes runs comparable: one profile, one data version, one split version.

    Attributes:
        profile: the config profile the runs were trained with (tag ``profile``).
        data_version: md5 of the beat table they were trained on (tag ``data_version``).
        split_version: md5 of the split assignments they used (tag ``split_version``).
    """

    profile: str
    data_version: str
    split_version: str

    @classmethod
    def current(cls, cfg: Config, task: str) -> RunScope:
        """The scope of the pipeline run that registers: this profile, the current tables.

        Args:
            cfg: configuration.
            task: ``ptb`` or ``mitbih``.

        Returns:
            The scope.
        """
        from ecgops.tracking import data_version, split_version

        return cls(cfg.profile, data_version(cfg, task), split_version(cfg, task))

    def tags(self) -> dict[str, str]:
        """The run tags a run of this scope carries."""
        return {
            "profile": self.profile,
            "data_version": self.data_version,
            "split_version": self.split_version,
        }

    def filter_string(self) -> str:
        """The MLflow run filter selecting this scope."""
        return " and ".join(f"tags.{key} = '{value}'" for key, value in self.tags().items())

    def matches(self, run: Run) -> bool:
        """Whether a run carries this scope's tags."""
        return all(run.data.tags.get(key) == value for key, value in self.tags().items())

    def __str__(self) -> str:
        return (
            f"profile {self.profile}, data {self.data_version[:SHORT_HASH]}, "
            f"split {self.split_version[:SHORT_HASH]}"
        )


@dataclass(frozen=True)
class Candidate:
    """A run that may be registered."""

    run: Run
    metric: float
    model_uri: str
    model_id: str | None


def needs_context(run: Run) -> bool:
    """Whether the run's model reads the RR context (tag ``ecgops.needs_context``)."""
    from ecgops.features.context import NEEDS_CONTEXT_TAG

    return run.data.tags.get(NEEDS_CONTEXT_TAG, "false").lower() == "true"


def find_candidates(
    client: MlflowClient,
    cfg: Config,
    task: str,
    scheme: str,
    scope: RunScope | None = None,
    kind: str = MORPHOLOGY,
) -> list[Candidate]:
    """Finished runs of the task, scheme and scope with a logged model, best first.

    Args:
        client: MLflow client.
        cfg: configuration.
        task: ``ptb`` or ``mitbih``.
        scheme: split scheme tag of the runs.
        scope: the runs that compare (default :meth:`RunScope.current`).
        kind: ``morphology`` (runs whose model reads the beats alone) or ``context``.

    Returns:
        Candidates sorted by ``val_<select_metric>`` descending, then by start time.
    """
    exp = client.get_experiment_by_name(cfg.experiment_name(task))
    if exp is None:
        return []
    scope = scope or RunScope.current(cfg, task)
    metric = f"val_{cfg.registry.select_metric}"
    query = (
        f"tags.task = '{task}' and tags.split_scheme = '{scheme}' "
        f"and attributes.status = 'FINISHED' and {scope.filter_string()}"
    )
    runs = []
    token = None
    while True:
        page = client.search_runs(
            [exp.experiment_id], filter_string=query, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    models = _logged_models_by_run(client, exp.experiment_id)
    out = []
    for run in runs:
        value = run.data.metrics.get(metric)
        if value is None or not math.isfinite(value) or not scope.matches(run):
            continue
        if needs_context(run) != (kind == CONTEXT):
            continue
        logged = models.get(run.info.run_id)
        if logged is not None:
            uri, model_id = logged
        elif MODEL_NAME in _run_artifacts(client, run.info.run_id):
            uri, model_id = f"runs:/{run.info.run_id}/{MODEL_NAME}", None  # pre-3.0 layout
        else:
            continue
        out.append(Candidate(run, float(value), uri, model_id))
    out.sort(key=lambda c: (-c.metric, c.run.info.start_time or 0, c.run.info.run_id))
    return out


def run_config(run: Run, scheme: str) -> str:
    """The run's configuration name (tag :data:`~ecgops.tracking.CONFIG_TAG`, else its name).

    Args:
        run: an MLflow run.
        scheme: its split scheme (stripped from a run name such as ``lgbm-raw-beat``).

    Returns:
        The configuration name, e.g. ``lgbm-raw``.
    """
    from ecgops.tracking import CONFIG_TAG, config_name

    return run.data.tags.get(CONFIG_TAG) or config_name(run.info.run_name or "", scheme)


def selection_scheme(
    cfg: Config, scheme: str | None = None, trained: Sequence[str] | None = None
) -> str:
    """The scheme whose runs are ranked and registered.

    Args:
        cfg: configuration.
        scheme: an explicit scheme (wins).
        trained: the schemes the registering pipeline trained (None: every scheme); the
            preferred scheme is used only when it was trained, else the first trained one.

    Returns:
        ``scheme``, else ``registry.select_scheme``, else ``splits.scheme`` (among ``trained``).
    """
    if scheme:
        return scheme
    preferred = cfg.registry.select_scheme or cfg.splits.scheme
    if trained and preferred not in trained:
        return trained[0]
    return preferred


def _logged_models_by_run(client: MlflowClient, experiment_id: str) -> dict[str, tuple[str, str]]:
    """run id -> (model URI, model id) of the READY logged models named ``model``."""
    out: dict[str, tuple[str, str]] = {}
    token = None
    while True:
        page = client.search_logged_models([experiment_id], page_token=token)
        for m in page:
            status = str(getattr(m.status, "name", m.status))
            if m.name == MODEL_NAME and m.source_run_id and "READY" in status.upper():
                out.setdefault(m.source_run_id, (m.model_uri, m.model_id))
        token = page.token
        if not token:
            break
    return out


def _run_artifacts(client: MlflowClient, run_id: str) -> set[str]:
    try:
        return {a.path for a in client.list_artifacts(run_id)}
    except Exception:  # noqa: BLE001 - an unreadable artifact store means no usable model
        return set()
