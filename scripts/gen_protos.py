"""Generates the Python gRPC code in gateway/api/ from proto/ (the only way it is made).

The .proto packages are `mpcgate.<area>.v1`; the generated modules live in the
`gateway.api.<area>.v1` Python package, so imports are rewritten after protoc runs
(the approach of Temporal's Python SDK). `--check` regenerates into a temporary
directory and fails if gateway/api/ differs, which is how CI catches stale code.

Usage: python scripts/gen_protos.py [--check]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "gateway" / "api"
PROTO_PACKAGE = "mpcgate"
PYTHON_PACKAGE = "gateway.api"
_IMPORT = re.compile(rf"^(from|import) {PROTO_PACKAGE}\.", re.MULTILINE)
_QUALIFIED = re.compile(rf"\b{PROTO_PACKAGE}\.(common|gateway|exchange)\.v1\.(\w+_pb2)")


def generate(dest: Path) -> None:
    """Runs protoc into a scratch folder and lays the rewritten package out in dest."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            [
                sys.executable, "-m", "grpc_tools.protoc",
                f"-I{PROTO_ROOT}", f"-I{well_known}",
                f"--python_out={scratch}", f"--grpc_python_out={scratch}",
                f"--mypy_out={scratch}", f"--mypy_grpc_out={scratch}",
                *protos,
            ],
            cwd=PROTO_ROOT,
            # the mypy plugins live beside this interpreter
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SystemExit(f"protoc failed:\n{done.stderr}")
        generated = Path(scratch) / PROTO_PACKAGE
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "__init__.py").write_text('"""Generated gRPC code: run scripts/gen_protos.py, never edit."""\n')
        for src in sorted(generated.rglob("*")):
            target = dest / src.relative_to(generated)
            if src.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                (target / "__init__.py").touch()
                continue
            text = _IMPORT.sub(rf"\1 {PYTHON_PACKAGE}.", src.read_text())
            text = _QUALIFIED.sub(rf"{PYTHON_PACKAGE}.\1.v1.\2", text)
            target.write_text(text)


def _differences(left: Path, right: Path) -> list[str]:
    cmp = filecmp.dircmp(left, right)
    found = [str(Path(left, n)) for n in cmp.left_only + cmp.right_only + cmp.diff_files + cmp.funny_files]
    for sub in cmp.common_dirs:
        found += _differences(left / sub, right / sub)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if gateway/api/ is stale")
    args = parser.parse_args()
    if not args.check:
        shutil.rmtree(OUT, ignore_errors=True)
        generate(OUT)
        print(f"generated {OUT.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as fresh:
        generate(Path(fresh))
        for cache in Path(OUT).rglob("__pycache__"):
            shutil.rmtree(cache)
        stale = _differences(OUT, Path(fresh)) if OUT.exists() else [str(OUT)]
    if stale:
        print("generated code is stale; run: python scripts/gen_protos.py", file=sys.stderr)
        for path in stale:
            print(f"  {path}", file=sys.stderr)
        return 1
    print("generated code is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
