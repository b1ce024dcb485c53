"""charter's data engine: constitution -> responses -> critiques/revisions -> preference pairs."""

__version__ = "0.1.0"
