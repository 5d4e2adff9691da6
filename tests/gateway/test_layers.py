"""The floor plan holds: the control plane and the client import no torch (the
worker processes alone compute), and importing mpc changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys


def _loaded_after(statement: str) -> set[str]:
    script = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"})
    return set(done.stdout.split())


def test_the_gateway_server_cli_and_sdk_load_no_torch_or_crypten() -> None:
    loaded = _loaded_after("import gateway.server, gateway.cli, gateway.client.sdk, gateway.dealer.server")
    assert {"gateway.server", "gateway.jobs.scheduler", "mpc.catalogue.kinds"} <= loaded
    assert not {"torch", "crypten"} & loaded


def test_importing_mpc_patches_nothing_until_the_runtime_is_imported() -> None:
    script = ("import os, sys, mpc, mpc.catalogue.kinds, mpc.privacy.plan\n"
              "print('torch' in sys.modules, 'OMP_WAIT_POLICY' in os.environ)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"})
    assert done.stdout.split() == ["False", "False"]
    assert {"torch", "crypten"} <= _loaded_after("import mpc.programs")
