// GraphiQL, bundled from the npm registry at the versions of package-lock.json: no asset comes from
// anywhere but the gateway. The Headers tab's JSON goes with every HTTP request and, for subscriptions,
// as the graphql-ws connection's payload (graph/http/ws.py reads `Authorization` from it).
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import "graphiql/graphiql.css";
import { createRoot } from "react-dom/client";

const WELCOME = `# aicn's GraphQL API. Put your token in the Headers tab below:
#   {"Authorization": "Bearer aicn_..."}
# then run (Ctrl-Enter):
query Me {
  viewer { name balance { amount currency } }
  centers { edges { node { name status { state } capacity { standardUnitsAvailable standardUnitsTotal } } } }
}
`;

function websocketUrl(httpUrl: string): string {
  const url = new URL(httpUrl);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  url.search = "";
  return url.toString();
}

const endpoint = window.location.href.split("?")[0].split("#")[0];
const fetcher = createGraphiQLFetcher({ url: endpoint, subscriptionUrl: websocketUrl(endpoint) });

const container = document.getElementById("graphiql");
if (container) {
  container.textContent = "";
  createRoot(container).render(
    <GraphiQL fetcher={fetcher} defaultQuery={WELCOME} defaultEditorToolsVisibility="headers" isHeadersEditorEnabled shouldPersistHeaders />,
  );
}
