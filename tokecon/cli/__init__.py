"""The Typer command-line interface: parse, call the core, render, exit code. No arithmetic here."""
