"""Ausweg: the composition root, command line and platform transports."""
