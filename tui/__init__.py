"""pacs-tui: a keyboard-driven terminal PACS client."""

__version__ = "0.1.0"

# pacs-tui's UID root: a UUID-derived OID (PS3.5 B.2), ours alone; everything we mint sits under
# it. The implementation we name in associations and in the file meta of files we write.
UID_ROOT = "2.25.106776260111778404018079692849839762313"
IMPLEMENTATION_CLASS_UID = UID_ROOT + ".1"
IMPLEMENTATION_VERSION_NAME = f"PACS_TUI_{__version__}"[:16]
