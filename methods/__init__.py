"""Balancing methods, one per file. Every module here is imported by the registry on first use."""
