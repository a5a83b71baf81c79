"""Figures: one function per view, each reading a trace and returning a plotly Figure."""
