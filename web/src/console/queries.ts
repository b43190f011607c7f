// Every operation the console sends, checked against schema.graphql (tests/test_console_queries.py validates this file).
export const VIEWER = /* GraphQL */ `
  query ConsoleViewer {
    viewer { id name balance { amount currency } available { amount currency } }
  }
`;

const JOB_ROW = `id name state submittedAt finishedAt progress { fraction message } center { name }`;

export const JOBS = /* GraphQL */ `
  query ConsoleJobs($filter: JobFilter) {
    jobs(filter: $filter, first: 50) { totalCount edges { node { ${JOB_ROW} } } }
  }
`;

export const JOB_UPDATES = /* GraphQL */ `
  subscription ConsoleJobUpdates($filter: JobFilter) {
    jobUpdates(filter: $filter) { ${JOB_ROW} }
  }
`;

export const JOB = /* GraphQL */ `
  query ConsoleJob($id: ID!) {
    node(id: $id) {
      ... on Job {
        id name kind state failureReason exitCode command submittedAt startedAt finishedAt
        request { accelerator devices standardUnits cpus memoryGb maxDurationMinutes }
        progress { fraction step totalSteps message metrics at }
        center { name displayName }
        computeUnit { accelerator { model } pricePerUnitHour { amount currency } }
        placement { policy waiting candidates { score chosen reason center { name displayName } } }
        inputs { id name version }
        usage { standardUnitHours amount { amount currency } }
      }
    }
  }
`;

export const JOB_EVENTS = /* GraphQL */ `
  subscription ConsoleJobEvents($jobId: ID!, $after: Int) {
    jobEvents(jobId: $jobId, after: $after) {
      seq at kind state message
      progress { fraction step totalSteps message metrics at }
    }
  }
`;

export const JOB_LOGS = /* GraphQL */ `
  subscription ConsoleJobLogs($jobId: ID!, $tailLines: Int) {
    jobLogs(jobId: $jobId, tailLines: $tailLines) { lines truncated }
  }
`;

export const CANCEL_JOB = /* GraphQL */ `
  mutation ConsoleCancelJob($jobId: ID!) {
    cancelJob(input: { jobId: $jobId }) { job { id state } userErrors { code message field } }
  }
`;

export const DATASETS = /* GraphQL */ `
  query ConsoleDatasets {
    datasets(first: 100) { edges { node { id name version } } }
  }
`;

export const OFFERS = /* GraphQL */ `
  query ConsoleOffers($request: ResourceRequestInput!, $policy: PlacementPolicy!) {
    offers(request: $request, policy: $policy) {
      feasible reason devices standardUnits score estimatedStart
      pricePerHour { amount currency } maxCost { amount currency }
      center { id name displayName }
      computeUnit { accelerator { model } }
    }
  }
`;

export const SUBMIT_JOB = /* GraphQL */ `
  mutation ConsoleSubmitJob($input: SubmitJobInput!) {
    submitJob(input: $input) { job { id name state } userErrors { code message field } }
  }
`;

export const CENTERS = /* GraphQL */ `
  query ConsoleCenters {
    centers(first: 50) {
      edges {
        node {
          id name displayName region kind
          status { state latencyMs checkedAt message }
          capacity { standardUnitsTotal standardUnitsAvailable }
          computeUnits {
            id partition devicesTotal devicesAvailable standardUnitsTotal standardUnitsAvailable
            accelerator { model vendor standardUnits }
            pricePerUnitHour { amount currency }
          }
        }
      }
    }
  }
`;

export const BILLS = /* GraphQL */ `
  query ConsoleBills {
    bills(first: 24) {
      edges { node { id period status periodStart periodEnd total { amount currency } csvUrl account { name } } }
    }
  }
`;

export const BILL_LINES = /* GraphQL */ `
  query ConsoleBillLines($id: ID!, $after: String) {
    node(id: $id) {
      ... on Bill {
        lines(first: 100, after: $after) {
          pageInfo { hasNextPage endCursor }
          edges { node { kind createdAt amount { amount currency } usage { endedAt standardUnitHours amount { amount } } } }
        }
      }
    }
  }
`;

const SERVICE_CARD = `id name state failureReason endpoint requestsTotal createdAt stoppedAt targetRequestsPerReplica
  replicas { min max ready desired }
  model { id name version }
  center { name displayName }
  pricePerUnitHour { amount currency }`;

export const SERVICES = /* GraphQL */ `
  query ConsoleServices($filter: ServiceFilter) {
    services(filter: $filter, first: 50) { totalCount edges { node { ${SERVICE_CARD} } } }
  }
`;

export const SERVICE = /* GraphQL */ `
  query ConsoleService($id: ID!) {
    node(id: $id) { ... on InferenceService { ${SERVICE_CARD} } }
  }
`;

export const SERVICE_EVENTS = /* GraphQL */ `
  subscription ConsoleServiceEvents($serviceId: ID!, $after: Int) {
    serviceEvents(serviceId: $serviceId, after: $after) { seq at kind state replicasReady message }
  }
`;

export const INVOKE_SERVICE = /* GraphQL */ `
  mutation ConsoleInvokeService($serviceId: ID!, $input: JSON!) {
    invokeService(input: { serviceId: $serviceId, input: $input }) { output latencyMs userErrors { code message field } }
  }
`;

export const SCALE_SERVICE = /* GraphQL */ `
  mutation ConsoleScaleService($serviceId: ID!, $scale: ServiceScaleInput!) {
    scaleService(input: { serviceId: $serviceId, scale: $scale }) {
      service { ${SERVICE_CARD} }
      userErrors { code message field }
    }
  }
`;

export const STOP_SERVICE = /* GraphQL */ `
  mutation ConsoleStopService($serviceId: ID!) {
    stopService(input: { serviceId: $serviceId }) { service { ${SERVICE_CARD} } userErrors { code message field } }
  }
`;
