"""Visual lecture toolkit for courses on large language models: model -> capture -> trace -> figure -> demo."""

__version__ = "0.1.0"
