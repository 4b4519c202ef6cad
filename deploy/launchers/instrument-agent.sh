#!/bin/sh
# instrument-agent launcher (Linux): checks Node.js, then runs the bundle beside this file
# with the node_modules beside it. IAGENT_NODE names another node binary.
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
node=${IAGENT_NODE:-node}
need=20
if ! command -v "$node" >/dev/null 2>&1; then
  echo "instrument-agent: Node.js $need or newer is needed, and '$node' is not on PATH." >&2
  echo "  Install Node.js $need LTS (https://nodejs.org or your distribution), or set IAGENT_NODE=/path/to/node." >&2
  exit 1
fi
major=$("$node" -p 'process.versions.node.split(".")[0]' 2>/dev/null)
case "$major" in
  ''|*[!0-9]*) major=0 ;;
esac
if [ "$major" -lt "$need" ]; then
  echo "instrument-agent: Node.js $need or newer is needed; '$node' is $("$node" --version 2>/dev/null || echo 'unknown')." >&2
  echo "  Install Node.js $need LTS, or set IAGENT_NODE=/path/to/node." >&2
  exit 1
fi
exec "$node" "$here/instrument-agent.mjs" "$@"
