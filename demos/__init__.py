"""Gradio demos, one module per concept. Each defines TITLE, ORDER and a module-level `demo` (gr.Blocks)."""
