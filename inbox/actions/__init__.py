"""Action functions: every write outside ingest goes through one of these.

Each takes an ``AsyncSession`` inside ``Store.write()`` so the caller's transaction holds
the change, its audit entry and its events together.
"""
