"""Who asks and what they may do: viewers, API tokens, accounts, the audit log, rate limits."""
