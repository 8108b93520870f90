"""The router's parts: inbound clean-up and language (``inbound``), the replies kept
until sent (``replies``). :class:`bot.router.Router` wires them."""
