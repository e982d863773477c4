"""tokecon: the economics of LLM inference from first principles.

Every command is also a function (tokecon.api): ``tokecon.compare(model="llama3-70b",
gpus=["8xH100", "8xB200"])`` returns the result the CLI prints. The core (physics, serving,
economics, catalogs, fidelity) imports neither typer nor rich; the CLI in :mod:`tokecon.cli` sits on top.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """The API's functions (tokecon.api), imported when first used so that ``import tokecon`` stays light."""
    import importlib

    api = importlib.import_module("tokecon.api")
    if name in api.FUNCTIONS:
        return getattr(api, name)
    raise AttributeError(f"module 'tokecon' has no attribute {name!r}")
