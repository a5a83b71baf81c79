"""Visual lecture toolkit for courses on large language models: model -> capture -> trace -> figure -> demo."""

__version__ = "0.1.0"


def notebook() -> str:
    """Make plotly draw offline in Jupyter: plotly.js inlined once, no script from a CDN (see toolkit.views)."""
    from toolkit import views

    return views.notebook()
