"""DICOM networking: nodes, SCU operations with pynetdicom (queries with a minimal upper
layer of our own, :mod:`tui.net.dul`), a receiver and a mini-PACS."""
