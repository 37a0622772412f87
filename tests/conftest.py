"""Pytest configuration shared by all tests (factories live in factories.py)."""
