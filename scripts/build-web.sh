#!/usr/bin/env bash
# Build the browser faces (web/: GraphiQL's page and the /console app) into graph/http/static, the
# Python package's data: `pip install` and `aicn serve` need no Node. The output is generated, like
# schema.graphql: never edit it by hand; CI runs this and fails when the committed files differ.
# Only the npm registry is needed, and only here: `npm ci` installs exactly what package-lock.json pins.
set -euo pipefail
cd "$(dirname "$0")/../web"
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
