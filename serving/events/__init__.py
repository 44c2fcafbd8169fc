"""Event intake: POST /events appends client events to the raw log, durably, once each, bounded.

Read in this order: `schemas` (the request body), `raw_rows` (how each event kind lands in the
raw schema), `intake` (the append: limits, group commit, the write lock), `planning` (what a
request adds), `state` (the SQLite index of what the log holds), `durable_files` (crash-safe
file installation), `errors` and `route` (the HTTP answers: 202, 409, 429, 503 with Retry-After).
"""
