"""Channel adapters: each turns wire input into an ``inbox.inbound.InboundMessage`` and
delivers outbound replies for the conversations it owns.

Adapters never decide routing and never touch ORM rows; they call ``inbox`` entry points.
"""

from collections.abc import Mapping

from inbox.outbox import Sender

# Outbound senders by channel name, filled in as channels land (email, chat, form).
# Replies on a channel without a sender wait in the outbox, queued, until one exists.
SENDERS: Mapping[str, Sender] = {}
