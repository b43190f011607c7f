"""The GraphQL documents a PEER connector sends: the peer's public contract, nothing private."""

DESCRIBE = "query PeerDescribe { gateway { id version } viewer { name } }"

COMPUTE_UNITS = """
query PeerComputeUnits {
  computeUnits(first: 100) {
    edges { node { accelerator { model } devicesTotal devicesAvailable pricePerUnitHour { amount } } }
  }
}
"""

OFFERS = """
query PeerOffers($request: ResourceRequestInput!, $policy: PlacementPolicy!) {
  offers(request: $request, policy: $policy) {
    feasible reason devices estimatedStart
    computeUnit { accelerator { model } devicesTotal devicesAvailable pricePerUnitHour { amount } }
  }
}
"""

SUBMIT = """
mutation PeerSubmit($input: SubmitJobInput!) {
  submitJob(input: $input) { job { id state } userErrors { code message } }
}
"""

CANCEL = """
mutation PeerCancel($input: CancelJobInput!) {
  cancelJob(input: $input) { job { id state } userErrors { code message } }
}
"""

LOG_BYTES = """
query PeerLogBytes($id: ID!, $offset: BigInt!, $max: Int!) {
  node(id: $id) { ... on Job { id logBytes(offset: $offset, maxBytes: $max) { data start nextOffset } } }
}
"""

LOGS = "query PeerLogs($id: ID!, $tail: Int!) { node(id: $id) { ... on Job { logs(tailLines: $tail) } } }"

EVENT_FIELDS = """
seq at kind state message
progress { fraction step totalSteps message metrics at }
"""

JOB_FIELDS = "id state exitCode failureReason startedAt finishedAt"

EVENTS = f"""
subscription PeerJobEvents($id: ID!, $after: Int) {{
  jobEvents(jobId: $id, after: $after) {{ {EVENT_FIELDS} job {{ {JOB_FIELDS} }} }}
}}
"""

SERVICE_EVENTS = """
subscription PeerServiceEvents($id: ID!, $after: Int) {
  serviceEvents(serviceId: $id, after: $after) { seq at kind state replicasReady message }
}
"""

CHARGES = "query PeerCharges($ids: [ID!]!) { nodes(ids: $ids) { ... on Job { id usage { amount { amount } } } } }"


def poll_document(count: int) -> str:
    """One query for ``count`` jobs: each job and its events after the seq the caller has seen."""
    variables = ", ".join(f"$id{index}: ID!, $after{index}: Int" for index in range(count))
    fields = "\n".join(
        f"j{index}: node(id: $id{index}) {{ ... on Job {{ {JOB_FIELDS} "
        f"events(after: $after{index}, first: 100) {{ edges {{ node {{ {EVENT_FIELDS} }} }} pageInfo {{ hasNextPage }} }} }} }}"
        for index in range(count)
    )
    return f"query PeerPoll({variables}) {{\n{fields}\n}}"
