"""``python -m hxinfra`` runs the CLI."""

from hxinfra.cli import main

main()
