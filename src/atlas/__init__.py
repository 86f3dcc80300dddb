"""Atlas: a local-first media-library engine that learns from use."""

__version__ = "0.1.0"
