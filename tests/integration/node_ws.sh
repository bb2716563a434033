#!/usr/bin/env bash
# echo_server driven by the node `ws` package.  Installs the locked ws
# version into tests/integration/node/node_modules when it is missing (npm
# registry), then runs node/test_echo_server.js and node/test_deflate.js.
#   bash tests/integration/node_ws.sh
#   CASE=closeCodes bash tests/integration/node_ws.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/node"
if ! command -v node >/dev/null; then
  echo "node_ws.sh: node is not installed (apt-get install nodejs npm)" >&2
  exit 1
fi
if [ ! -d node_modules/ws ]; then
  timeout 120 npm ci --silent --no-audit --no-fund ||
    timeout 120 npm install --silent --no-audit --no-fund
fi
cd "$here/../.."
# test_deflate.js: permessage-deflate both ways; CASE picks a case of either
if [ -n "${CASE:-}" ] && grep -q "async ${CASE}(" "$here/node/test_deflate.js"; then
  exec timeout 120 node "$here/node/test_deflate.js"
fi
timeout 120 node "$here/node/test_echo_server.js"
if [ -z "${CASE:-}" ]; then
  exec timeout 120 node "$here/node/test_deflate.js"
fi
