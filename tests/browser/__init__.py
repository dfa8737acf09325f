"""Browser tests: JupyterLab + Chromium.

A package, so that its conftest does not shadow ``tests/conftest.py`` as ``conftest``.
"""
