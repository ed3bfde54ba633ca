"""perfaudit: a performance audit and profiling toolkit for Python web services."""

__version__ = "0.1.0"
