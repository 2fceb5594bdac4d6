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
# The Activity section's tiles (Progress, and the Campaign page's Trends after KPI_LABELS).
ACTIVITY_TILES = ["Dials today so far", "Answered today so far", "Conversions today so far"]
PROGRESS_TILES = [
    *("Leads", "Penetration", "Completion", "Retries left"),
    *ACTIVITY_TILES,
    *("Stale pending", "Outside calling window", "Do-not-call still pending"),
    *("Answered, no disposition", "Wrap-up share"),
]
