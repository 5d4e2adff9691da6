"""The README's walk-through runs exactly as written: a federation set up by hand
(PKI, token issuers, configs, `mpcgate serve`, the dealer, `mpcgate datasets`,
`mpcgate jobs`) on loopback, then drained with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.multiprocess

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough() -> str:
    text = README.read_text()
    match = re.search(r"<!-- walkthrough -->\n```bash\n(.*?)\n```", text, re.DOTALL)
    assert match, "README has no walk-through block"
    return match.group(1)


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", "COLUMNS": "160"}
    process = subprocess.Popen(["bash", "-euo", "pipefail", "-c", walkthrough()], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        subprocess.run(["pkill", "-KILL", "-f", f"{tmp_path}"], check=False)
    logs = "".join(p.read_text() for p in tmp_path.glob("**/*.log"))
    assert process.returncode == 0, output + logs
    assert output.count("SUCCEEDED") >= 2, output
    assert "[18, 30)" in output and "correlation" in output, output
    assert re.search(r"^[0-9a-f]{32}\s+SUCCEEDED\s+stats\.histogram", output, re.MULTILINE), output
    assert re.search(r"^200$", output, re.MULTILINE), output  # bank-b's console, over TLS its CA vouches for
