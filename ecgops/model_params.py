"""Per-model params: a model's own part of a params section, declared for the stage table.

:class:`ModelParams` names where the entries live (``classical``'s ``lr``/``rf``/``lgbm``,
``deep.archs``) and which matrix parameter names a call's model; a stage of
:data:`ecgops.stages.STAGES` that declares one depends on its call's model's entry only
(:mod:`ecgops.param_files` writes the files and the Prefect cache keys hash them).
"""

from __future__ import annotations

from dataclasses import dataclass

from ecgops.models import CLASSICAL_MODELS


@dataclass(frozen=True)
class ModelParams:
    """A model's own part of a params section, split off into a params file per model.

    The entries under ``path`` (``classical``: ``lr``/``rf``/``lgbm``; ``deep.archs``: every
    arch) leave the section's common file and each is written to
    ``outputs/params/{path, dots as folders}/{model}.json``, one file per model name: the
    context configuration ``cnn+rr`` has its own file holding ``cnn``'s entry
    (:func:`ecgops.models.split_context`). A stage declaring it depends on its section's common
    file plus the file of its call's model (``${item.model}`` in ``dvc.yaml``).

    Attributes:
        path: the entries' dotted location in the config (its first part is the section).
        keys: the entries split off; empty: every key under ``path``.
        param: the matrix (or fixed) parameter that names a call's model.
    """

    path: str
    keys: tuple[str, ...] = ()
    param: str = "model"

    @property
    def section(self) -> str:
        """The params section the entries belong to (``deep`` for ``deep.archs``)."""
        return self.path.split(".")[0]

    def file_name(self, model: str) -> str:
        """A model's params file name, for :func:`ecgops.paths.params_file` (``deep/archs/cnn``)."""
        return "/".join((*self.path.split("."), model))


CLASSICAL_MODEL_PARAMS = ModelParams("classical", CLASSICAL_MODELS)
"""``classical.{lr,rf,lgbm}``: the classical stages' per-model params."""
NET_PARAMS = ModelParams("deep.archs")
"""``deep.archs.{net}``: the nets' per-model params (deep and multi-lead stages)."""
