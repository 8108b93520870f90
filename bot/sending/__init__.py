"""The send path: commit, then confirm, then send (issue 14).

An update's replies are committed with its effects (the outbox); the transport
confirms the update to its platform; the replies go out from here, apart from intake:

* :mod:`bot.sending.queues` - one queue per destination (platform + chat), a worker
  per destination with something to send, crisis replies first, platforms that are
  unreachable parked until the retry round, bounded memory (sets beyond the bound
  stay in the outbox and are read again when there is room).
* :mod:`bot.sending.merge` - which replies may share a message while a destination
  waits for its platform's limit (relays about one case, to one staff topic).
* :mod:`bot.sending.progress` - progress per reply, recorded in the outbox right
  after each send (group commit), so a crash leaves only replies in flight in doubt.
* :mod:`bot.sending.delivery` - one send: thread of the case, refs for /vanish,
  withheld replies, metrics.
"""

from bot.sending.queues import ReplySet, Sender

__all__ = ["ReplySet", "Sender"]
