"""CrypTen integration for mpcgate: the torch compatibility layer, local multi-party
launching, and (as they land) the gRPC communicator and the job programs.

Importing this package makes CrypTen usable on modern torch (see mpc.compat).
"""

from mpc import compat

compat.install()
