"""Serving and the umbrella CLI."""
