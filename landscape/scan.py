"""Scans of the energy landscape (filled in below)."""
