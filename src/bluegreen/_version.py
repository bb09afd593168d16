"""The package version (one place, read by ``bluegreen`` and its settings)."""

__version__ = "0.1.0"
