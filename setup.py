"""Lets Beam's `--setup_file ./setup.py` install consentgate on remote workers; the metadata
is in pyproject.toml."""

from setuptools import setup

setup()
