"""tokecon: the economics of LLM inference from first principles.

The core (catalog, specs, operations, roofline, comms, memory, economics,
commands) imports neither typer nor rich; the CLI in :mod:`tokecon.cli` sits on top.
"""

__version__ = "0.1.0"
