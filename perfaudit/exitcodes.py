"""The documented exit codes (README, ``--help``)."""

OK = 0
FAILED = 1  # a threshold failed or a regression was found
USAGE = 2  # usage or configuration error: bad flag, bad scenario file
INVALID = 3  # the run is invalid: the generator fell behind, or a process crashed
INTERRUPTED = 130  # Ctrl-C
