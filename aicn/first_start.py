"""What the operator sees on the gateway's first start: its admin token, shown once.

A module of its own so that the composition root (``aicn.runtime``) prints it without
depending on a command-line module.
"""

from __future__ import annotations


def announce_admin_token(secret: str, account_name: str) -> None:
    """Show a first start's admin token once, on stdout; the log only says that it happened."""
    print(
        "\n"
        f"aicn: first start: created an admin token for account {account_name!r}. It is shown this once:\n\n"
        f"    {secret}\n\n"
        '  GraphiQL: paste {"Authorization": "Bearer <token>"} into the Headers tab.\n'
        "  curl:     -H 'Authorization: Bearer <token>'\n"
        "  More tokens: aicn tokens create --account NAME --scopes read,submit\n",
        flush=True,
    )
