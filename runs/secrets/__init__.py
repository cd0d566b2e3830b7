"""Secrets: named sets of key → value pairs, encrypted at rest (docs/secrets.md).

`crypto` holds the keys (RUNS_SECRET_KEYS), `models` the rows, `references` the
`{"$secret": "NAME.KEY"}` references of step parameters (resolved only at the
call, redacted from whatever is written), `vault` the Vault API robots read them
through with `robocorp-vault`.
"""
