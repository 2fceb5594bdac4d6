"""What the pages must show, written out literally: the spec the tests check the code against,
so it is never derived from `lib/`."""

KPI_LABELS = [
    "Leads",
    "Pending",
    "Attempted",
    "Answered",
    "Answer rate",
    "Success rate",
    "Conversions",
    "Conversion rate",
]
