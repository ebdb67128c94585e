"""ecgops: an MLOps training platform for ECG heartbeat classification."""

import os as _os

# OpenMP threads (torch, LightGBM) spin while idle by default. Two trainings sharing two cores
# then burn each other's time; a passive wait policy makes them yield. It must be set before
# the first OpenMP runtime loads, hence here; a value set by the user wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
