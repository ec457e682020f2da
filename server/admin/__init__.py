"""Administrative operations (apps, keys, backup and restore, status), as plain functions.

The `kefu` command calls them now; an HTTP API can call the same functions later. Each takes the configuration and
returns data (never prints); a refusal is an `AdminError` whose message is meant for the operator.
"""
