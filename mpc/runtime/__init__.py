"""CrypTen's runtime in mpcgate: the compatibility layer (compat), the communicator
and torch.distributed backend on a `mpc.transport.Session` (communicator, wire,
distributed) and the dealer (ttp).

Importing this package makes CrypTen usable on modern torch (see compat), and
makes idle OpenMP threads sleep (OMP_WAIT_POLICY=PASSIVE unless set) in this
process, if torch is not yet loaded, and in every process it starts. An MPC party
alternates short bursts of torch work with waits on its peers, and parties share
hosts (tests, demos, a dealer beside its parties): OpenMP's default, spinning after
each parallel region, burnt the cores the other parties needed. On 2 cores a
256 x 256 secure matmul took 40-200 ms with spinning threads and 22-35 ms without.
Only processes that compute import it: a gateway's control plane never does.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mpc.runtime import compat  # noqa: E402  (after the environment: importing torch reads it)

compat.install()
