"""Allow ``python -m emrepair``."""

from emrepair.cli.app import main

main()
