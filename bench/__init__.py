"""Guichet's benchmarks: ``python -m bench`` lists them, ``python -m bench NAME`` runs one.

Not part of the installed packages; run from the repository root.
"""
