"""Model definitions: classical pipelines, neural networks (nets/) and the beat encoder.

The model names live here, free of heavy imports, so that ``ecgops.config`` can check the
names in ``params.yaml`` at load time without importing scikit-learn or torch. The registries
(:data:`ecgops.models.classical.MODELS`, :data:`ecgops.models.nets.NETS`) are built from these
tuples, and ``tests/models/test_names.py`` checks that they agree.

Models that read a beat's rhythm context (its RR intervals, ``ecgops.schema.CONTEXT_COLUMNS``)
carry :data:`CONTEXT_SUFFIX` in their name: the classical inputs ``raw+rr`` / ``features+rr``
and the deep configurations ``cnn+rr`` / ``rescnn+rr`` (the net of :data:`CONTEXT_NETS` with
the context concatenated after its convolutional encoder).
"""

CLASSICAL_MODELS: tuple[str, ...] = ("lr", "rf", "lgbm")
NET_NAMES: tuple[str, ...] = ("lstm", "bilstm", "cnn", "rescnn", "transformer")
CONTEXT_SUFFIX = "+rr"
"""Name suffix of a model input or configuration that uses the RR context."""
MORPHOLOGY_INPUTS: tuple[str, ...] = ("raw", "features")
CLASSICAL_INPUTS: tuple[str, ...] = MORPHOLOGY_INPUTS + tuple(
    f"{i}{CONTEXT_SUFFIX}" for i in MORPHOLOGY_INPUTS
)
MULTILEAD_NETS: tuple[str, ...] = ("cnn", "rescnn", "transformer")
"""Nets that read several leads per beat (``in_channels``; the multi-lead task ``ptb12``)."""
CONTEXT_NETS: tuple[str, ...] = ("cnn", "rescnn")
"""Nets whose head takes the RR context beside the encoded waveform (``context_dim``)."""
CONTEXT_TASKS: tuple[str, ...] = ("mitbih",)
"""Tasks whose beat tables carry RR context (built from beat-annotated records)."""


def split_context(name: str) -> tuple[str, bool]:
    """A model input or configuration name without its context suffix, and whether it had one.

    Args:
        name: e.g. ``features+rr``, ``cnn+rr`` or ``cnn``.

    Returns:
        ``(base name, uses context)``: ``("features", True)``, ``("cnn", True)``,
        ``("cnn", False)``.
    """
    if name.endswith(CONTEXT_SUFFIX):
        return name[: -len(CONTEXT_SUFFIX)], True
    return name, False


def check_context_task(name: str, task: str) -> None:
    """Refuse a context input or configuration (``...+rr``) for a task without RR context.

    Args:
        name: a classical input or deep configuration name.
        task: the task it is trained for.

    Raises:
        ValueError: naming the tasks that have context.
    """
    if split_context(name)[1] and task not in CONTEXT_TASKS:
        raise ValueError(
            f"{name!r} reads the beats' RR context; {task} beats have none "
            f"(only {', '.join(CONTEXT_TASKS)})"
        )


def deep_config_names(archs: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Every deep configuration name: each arch, and ``{net}+rr`` for the context nets.

    Args:
        archs: the configured architectures (keys of ``deep.archs``).

    Returns:
        The names ``ecgops train deep --model`` accepts.
    """
    names = list(archs)
    names += [f"{a}{CONTEXT_SUFFIX}" for a in archs if a in CONTEXT_NETS]
    return tuple(names)


__all__ = [
    "CLASSICAL_INPUTS",
    "CLASSICAL_MODELS",
    "CONTEXT_NETS",
    "CONTEXT_SUFFIX",
    "CONTEXT_TASKS",
    "MORPHOLOGY_INPUTS",
    "MULTILEAD_NETS",
    "NET_NAMES",
    "check_context_task",
    "deep_config_names",
    "split_context",
]
