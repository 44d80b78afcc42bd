"""pacs-tui: a keyboard-driven terminal PACS client."""

__version__ = "0.1.0"
