"""Conversation logic: intake, routing, staff work, relay, privacy. No platform imports."""
