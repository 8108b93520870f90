"""End-to-end tests of the Matrix transport's building blocks against a real Synapse."""
