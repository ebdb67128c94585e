"""ecgops: an MLOps training platform for ECG heartbeat classification."""

import os as _os

# OpenMP threads (torch, LightGBM) spin while idle by default. Two trainings sharing two cores
# then burn each other's time; a passive wait policy makes them yield. It must be set before
# the first OpenMP runtime loads, hence here; a value set by the user wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Trainings run in threads; on CPython 3.11.0-3.11.7 two threads parsing source at once can
# fail one of them (cpython gh-106905). Before any library starts a thread, serialise ast.parse.
from ecgops import threadsafe_ast as _threadsafe_ast  # noqa: E402

_threadsafe_ast.install()
