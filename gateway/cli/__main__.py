"""`python -m gateway.cli` runs the `mpcgate` command."""

from gateway.cli import main

main()
