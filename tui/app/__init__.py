"""The Textual app: screens, widgets and their ``.tcss``. The only layer that imports Textual."""
