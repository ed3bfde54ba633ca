"""``perfaudit run``: scenarios → targets started → load + metrics → the run record."""
