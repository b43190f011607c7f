"""aicn as an Apollo Federation v2 subgraph: entity keys, `_service`, `_entities`, cost directives."""
