"""The package version, in a module of its own so that any layer can read it without importing
the package's re-exports (``tribute/__init__.py`` sits above every layer).

>>> import tribute
>>> __version__ == tribute.__version__
True
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
