"""Shared figure style: room above the panels for plotly's toolbar."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit import style


def test_panel_titles_get_room_above_them_for_the_toolbar():
    """The toolbar (about 25 px, top right) covered the right-hand panel's title when the top margin was 30 px."""
    titled = make_subplots(rows=1, cols=2, subplot_titles=("left", "right"))
    assert style.apply(titled).layout.margin.t >= 60
    assert style.apply(make_subplots(rows=1, cols=2)).layout.margin.t == 30  # no titles: no room needed
    assert style.apply(go.Figure()).layout.margin.t == 30
    assert style.apply(go.Figure(), title="a title").layout.margin.t == 70
    note = go.Figure().add_annotation(text="inside", xref="paper", yref="paper", x=0.5, y=0.5)
    assert style.apply(note).layout.margin.t == 30  # a note inside the plot is not a panel title
