"""hxinfra: the HX fleet's infrastructure engine, built on pyinfra 3.x.

The engine (this package) knows inventories, data layers, the lab and the CLI; it knows
nothing of nginx or PostgreSQL. Components live in the ``deploys`` package.
"""


def __getattr__(name: str) -> str:
    """``hxinfra.__version__``: the installed package's version (pyproject.toml says it, once)."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("hxinfra")
        except PackageNotFoundError:  # a source tree on sys.path, never installed
            return "0+unknown"
    raise AttributeError(f"module 'hxinfra' has no attribute {name!r}")
