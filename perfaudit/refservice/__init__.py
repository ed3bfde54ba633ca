"""The bundled reference service: a Python port of the Telegram <-> cursor-runner bridge.

It runs in two variants, ``phase3`` (the inefficiencies a Phase 3 review found) and
``optimized`` (each one fixed). Every fix is one named switch in ``switches.CATALOG``.
"""
