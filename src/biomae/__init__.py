"""biomae — automated annotation of bioacoustic soundscapes.

Data flows one way: ``audio -> features -> model -> heads -> decode -> annotations``.
``import biomae`` is light: heavy libraries are imported by the modules that need them.
"""

__version__ = "0.1.0"
