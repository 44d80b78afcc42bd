"""Terminal image encoders (half-block, kitty, sixel, iTerm2, text) and detection.

Never imports Textual. Encoders take 8-bit images from ``tui.render`` and return the
bytes (escape sequences) a terminal needs, as few as possible.
"""
