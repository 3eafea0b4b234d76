"""What the support lead reads: the numbers, answers given, CSAT ratings, CSV exports and the Insights API."""
