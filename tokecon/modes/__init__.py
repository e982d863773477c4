"""Serving modes beyond aggregated continuous batching at fixed concurrency (:mod:`tokecon.serving`).

Each module holds one mode's model, as numpy over the operating points, with its formula and
source in the docstring; the commands only choose options and render rows.
"""
