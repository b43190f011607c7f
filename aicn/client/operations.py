"""The GraphQL documents the user CLI sends: only fields of the published schema (schema.graphql)."""

JOB_FIELDS = """
id name state exitCode failureReason submittedAt startedAt finishedAt command
center { name } request { accelerator devices cpus maxDurationMinutes }
progress { fraction step totalSteps message }
"""

SUBMIT = f"""
mutation Submit($input: SubmitJobInput!) {{
  submitJob(input: $input) {{ job {{ {JOB_FIELDS} }} userErrors {{ field message code }} }}
}}
"""

JOB = f"query Job($id: ID!) {{ node(id: $id) {{ __typename ... on Job {{ {JOB_FIELDS} }} }} }}"

JOBS = f"""
query Jobs($filter: JobFilter, $first: Int) {{
  jobs(filter: $filter, first: $first) {{ totalCount edges {{ node {{ {JOB_FIELDS} }} }} }}
}}
"""

CANCEL = f"""
mutation Cancel($id: ID!) {{
  cancelJob(input: {{jobId: $id}}) {{ job {{ {JOB_FIELDS} }} userErrors {{ field message code }} }}
}}
"""

EVENTS = """
subscription Watch($id: ID!) {
  jobEvents(jobId: $id) { seq kind state message progress { fraction step totalSteps message } }
}
"""

LOGS = "query Logs($id: ID!, $tail: Int!) { node(id: $id) { __typename ... on Job { logs(tailLines: $tail) } } }"

FOLLOW_LOGS = "subscription Follow($id: ID!, $tail: Int) { jobLogs(jobId: $id, tailLines: $tail) { lines truncated dropped } }"

CENTERS = """
query Centers {
  centers(first: 100) { edges { node {
    id name displayName kind region status { state message }
    computeUnits { accelerator { model } devicesTotal devicesAvailable pricePerUnitHour { amount currency } }
  } } }
}
"""

OFFERS = """
query Offers($request: ResourceRequestInput!, $policy: PlacementPolicy!) {
  offers(request: $request, policy: $policy) {
    center { name } computeUnit { accelerator { model } } feasible reason devices standardUnits
    pricePerHour { amount currency } maxCost { amount currency } estimatedStart score
  }
}
"""

BILLS = """
query Bills($first: Int) {
  bills(first: $first) { edges { node {
    id period status periodStart periodEnd total { amount currency } finalizedAt
    lines(first: 100) { totalCount edges { node { kind description amount { amount currency } } } }
  } } }
}
"""
