"""The gate every operation passes before it runs: authentication, text and shape limits, cost, rate, scopes."""
