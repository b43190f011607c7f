// A federation router for the tests: Apollo Gateway composing the subgraphs named in
// SUBGRAPHS (JSON: [{"name": ..., "url": ...}]), served on 127.0.0.1:$PORT, forwarding the
// client's Authorization header to every subgraph. Prints "ready" once it serves.
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import { ApolloGateway, IntrospectAndCompose, RemoteGraphQLDataSource } from "@apollo/gateway";

const subgraphs = JSON.parse(process.env.SUBGRAPHS);
const gateway = new ApolloGateway({
  supergraphSdl: new IntrospectAndCompose({ subgraphs }),
  buildService: ({ url }) =>
    new RemoteGraphQLDataSource({
      url,
      willSendRequest({ request, context }) {
        if (context.authorization) request.http.headers.set("authorization", context.authorization);
      },
    }),
});
const server = new ApolloServer({ gateway });
const { url } = await startStandaloneServer(server, {
  listen: { host: "127.0.0.1", port: Number(process.env.PORT) },
  context: async ({ req }) => ({ authorization: req.headers.authorization }),
});
console.log(`ready ${url}`);
