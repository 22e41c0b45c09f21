"""Rendering for people: rich tables and trees."""
