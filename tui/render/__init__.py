"""The numpy rendering core: decode, the LUT pipeline, volumes, projections, MPR, export.

Never imports Textual. Reads the archive's index (the pixel data offsets recorded at
import) and gives 8-bit images to the terminal encoders, the app and the CLI.
"""
