"""Vistrit: an educational distributed computing platform.

Layers, lowest first (a layer imports only from layers below it; ``tests/test_layers.py``
checks this):

* :mod:`vistrit.protocol` - VistritProtocol as a pure library (sans-I/O);
* :mod:`vistrit.bench` - measurements, returned as data;
* :mod:`vistrit.cli` and ``__main__`` - argument parsing, logging set-up and printing.
"""

__version__ = "0.1.0"
