// Builds both browser faces into the Python package (graph/http/static), served by `aicn serve`:
// graphiql.html (GraphiQL on GET /graphql) and console.html (the /console app), assets under /assets/.
import { resolve } from "node:path";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: resolve(__dirname, "../graph/http/static"),
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    // one bundle per page; GraphiQL's editor is large and loads only on its own page
    chunkSizeWarningLimit: 4096,
    rollupOptions: {
      input: {
        graphiql: resolve(__dirname, "graphiql.html"),
        console: resolve(__dirname, "console.html"),
      },
    },
  },
});
