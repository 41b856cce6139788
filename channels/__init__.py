"""Channel adapters: each turns wire input into an ``inbox.inbound.InboundMessage`` and
delivers outbound replies for the conversations it owns.

Adapters never decide routing and never touch ORM rows; they call ``inbox`` entry points.
"""
