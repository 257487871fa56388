"""The output folder: what framegen may write there (folder), how it writes (files),
the report and its checks (report, segmenters), heat-maps and the sheet (review), and
report.html (page)."""
