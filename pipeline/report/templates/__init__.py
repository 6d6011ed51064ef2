"""Jinja2 templates of the run reports (package data)."""
