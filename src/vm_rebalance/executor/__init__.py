"""Carrying plans out: live and cold migrations, lifecycle, limits, journal, progress events."""
