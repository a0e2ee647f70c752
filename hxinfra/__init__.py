"""hxinfra: the HX fleet's infrastructure engine, built on pyinfra 3.x.

The engine (this package) knows inventories, data layers, the lab and the CLI; it knows
nothing of nginx or PostgreSQL. Components live in the ``deploys`` package.
"""

__version__ = "0.1.0"
