"""`python -m flows.cli`: the `dreamedit3d` command."""

from flows.cli import main

main()
