"""The conversation store: models, the one ingest path, action functions and domain events.

This package owns every write to the database. It imports nothing from ``channels``,
``routing`` or ``web``; those packages call into it.
"""
