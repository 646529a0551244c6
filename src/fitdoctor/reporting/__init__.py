"""Renderers: text (ruff-like lines), JSON, Markdown and HTML. Library code returns data; these render it."""
