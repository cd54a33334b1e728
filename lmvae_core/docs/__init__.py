"""Formatters of the docs sections read from the repository's benchmarks/*.json: speed, paper cost, grid speed.

Each module turns committed measurements into Markdown and writes nothing; `lmvae readme` (lmvae_core/readme.py)
places their text between the markers of the page that holds each section.
"""
