"""deploy/setup.sh lays out a three-bank federation with a dealer for
deploy/compose.yaml; every config it writes is one the gateway accepts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from gateway import config

ROOT = Path(__file__).resolve().parents[2]


def test_the_deploy_layout_is_accepted(tmp_path: Path) -> None:
    folder = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", folder)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(["bash", str(folder / "setup.sh")], check=True, capture_output=True, env=env, timeout=120)
    for bank in ("bank-a", "bank-b", "bank-c"):
        raw = tomllib.loads((folder / bank / "gateway.toml").read_text())
        pki = folder / "pki"  # (inside the container: /srv/pki, mounted from here)
        raw["tls"] = {"ca": str(pki / "ca.crt"), "cert": str(pki / f"{bank}.crt"), "key": str(pki / f"{bank}.key")}
        parsed = config.parse(raw, folder / bank)
        assert parsed.party_id == bank and parsed.dealer == ("dealer", "dealer:7000")
        assert sorted(parsed.peers) == sorted({"bank-a", "bank-b", "bank-c"} - {bank})
    dealer = tomllib.loads((folder / "dealer" / "dealer.toml").read_text())
    assert dealer["parties"] == {b: f"{b}:7000" for b in ("bank-a", "bank-b", "bank-c")}
