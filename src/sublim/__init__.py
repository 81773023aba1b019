"""sublim: subliminal-learning experiments as a reproducible workflow."""

__version__ = "0.1.0"
