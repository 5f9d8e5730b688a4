"""The columns of a usage report: what `codesuggest usage report` prints and what the
instance's `GET /api/v4/usage/report` answers, so both sides name them alike."""

REPORT_COLUMNS = (
    "requested",
    "served",
    "empty",
    "errors",
    "direct",
    "monolith",
    "shown",
    "accepted",
    "rejected",
    "tokens_issued",
)
