#!/usr/bin/env bash
# Run the GraphQL-over-HTTP audit suite (npm `graphql-http`, serverAudits) against a running
# gateway, as the holder of a token. Needs node and npm; installs into a temporary directory.
#
#   scripts/graphql-http-audit.sh http://127.0.0.1:8000/graphql aicn_...
set -euo pipefail
url="${1:?usage: $0 URL [TOKEN]}"
token="${2:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null 2>&1
npm install --silent --no-audit --no-fund graphql-http@1.23.1 graphql@16 >/dev/null
cat > audit.mjs <<'JS'
import { serverAudits } from 'graphql-http';
const [url, token] = process.argv.slice(2);
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers || {});
  if (token) headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};
const counts = { ok: 0, warn: 0, error: 0 };
for (const audit of serverAudits({ url, fetchFn })) {
  const result = await audit.fn();
  counts[result.status]++;
  if (result.status !== 'ok') console.log(result.status.toUpperCase(), audit.name, '-', result.reason);
}
console.log(`${counts.ok} ok, ${counts.warn} warnings, ${counts.error} errors of ${counts.ok + counts.warn + counts.error}`);
process.exit(counts.error ? 1 : 0);
JS
node audit.mjs "$url" "$token"
