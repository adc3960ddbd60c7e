"""Render the IR into files with the Jinja2 templates in templates/."""
