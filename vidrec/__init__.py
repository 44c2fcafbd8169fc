"""vidrec: a two-stage (retrieval + ranking) video recommendation platform.

This package is the product's thin core: typed settings, the raw event schema, the simulator and
importers, and the `vidrec` CLI. It imports nothing from the layers built on top of it.
"""

__version__ = "0.1.0"
