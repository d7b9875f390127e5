"""The Composer half of a mirror: which versions (``select``), one item per archive (``plan``),
``composer/packages.json`` and ``p2/`` on disk (``index``), and the network side (``fetch``).

The rule a reader must not break: an archive lands under ``composer/dist/`` only once its SHA-1
matches, and a p2 file is published only for archives that landed.
"""
