"""E-mail: the e-mail trigger (intake from an MTA pipe or an IMAP mailbox) and
notifications to the people who own or follow an automation.

- `intake.email_receive` is the one service both `receive_email` and `fetch_mail`
  call: parse, match to e-mail triggers, start one run per message and automation,
  or record why not.
- `imap.mailbox_fetch` polls a mailbox and flags what it processed or rejected.
- `notifications` records a notification when a run becomes unresolved, failed or
  timed out (in the move's transaction, through `runs.outbox`) and sends it at once
  or in a digest.
"""
