"""mmthink: reasoning and uncertainty methods for (multimodal) language models, behind one CLI."""

__version__ = "0.1.0"
