"""Configuration: settings, the programme directory and translations."""
