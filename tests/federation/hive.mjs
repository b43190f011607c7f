// Hive Gateway for the tests: composes the subgraphs named in SUBGRAPHS (JSON: [{"name", "url"}])
// from their `_service { sdl }`, serves on 127.0.0.1:$PORT (subscriptions to clients over SSE),
// forwards the client's Authorization header over HTTP and, for subscriptions, in the
// graphql-transport-ws connection_init payload to the subgraphs. Prints "ready" once it serves.
import { createServer } from "node:http";
import { parse } from "graphql";
import { createGatewayRuntime } from "@graphql-hive/gateway-runtime";
import { composeServices } from "@theguild/federation-composition";

const subgraphs = JSON.parse(process.env.SUBGRAPHS);
const typeDefs = [];
for (const { name, url } of subgraphs) {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: "{ _service { sdl } }" }) });
  const { data } = await response.json();
  typeDefs.push({ name, url, typeDefs: parse(data._service.sdl) });
}
const composed = composeServices(typeDefs);
if (composed.errors) { console.error(composed.errors); process.exit(1); }
const gateway = createGatewayRuntime({
  supergraph: composed.supergraphSdl,
  propagateHeaders: { fromClientToSubgraphs: ({ request }) => ({ authorization: request.headers.get("authorization") ?? "" }) },
  transportEntries: {
    "*.http": {
      options: {
        subscriptions: { kind: "ws", options: { connectionParams: { authorization: "{context.headers.authorization}" } } },
      },
    },
  },
});
createServer(gateway).listen(Number(process.env.PORT), "127.0.0.1", () => console.log("ready"));
