"""One module per CLI verb (asv's layout); :mod:`perfaudit.cli` wires them into the app.

Each module is imported when the CLI starts, so it imports only typer and the light
helpers at module level; everything that measures, analyses or renders is imported
inside the command. Nothing below this package (run, analysis, report, stack, ...)
imports it: the commands call down, never the other way.
"""
