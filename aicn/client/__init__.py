"""The ``aicn`` command for users: a GraphQL client of any aicn gateway (``aicn job ...``, ``centers``, ``offers``, ``bill``)."""
