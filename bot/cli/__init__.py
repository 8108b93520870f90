"""The ``ausweg`` command: demo, run, check-config, migrate, link, keys, purge, backup,
privacy-report, report.

- ``parser``: the arguments of every command;
- ``entry``: :func:`main`, which runs one command and turns known failures into one line;
- ``common``: the settings a command works with and the stores it opens;
- one module per command group: ``demo``, ``run``, ``check`` (check-config), ``link``,
  ``stores`` (migrate, purge, backup), ``keys``, ``reports`` (privacy-report, report).
"""

from bot.cli.entry import main

__all__ = ["main"]
