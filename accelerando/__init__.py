"""accelerando: fast generative audio."""

__version__ = "0.1.0"
