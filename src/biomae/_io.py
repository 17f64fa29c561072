"""Kept for ``biomae.datasets`` only, until it imports :mod:`biomae.atomic_io`, their home."""

from biomae.atomic_io import atomic_open, atomic_path, atomic_write_text

__all__ = ["atomic_open", "atomic_path", "atomic_write_text"]
