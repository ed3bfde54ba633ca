"""Reading results: thresholds, validity, comparisons. Never measures anything."""
