#!/usr/bin/env bash
# Installs the real MCP clients the MCP tests drive, into the git-ignored .tools/ folder:
#   .tools/venv-mcp2  Python SDK `mcp` 2.x (2026-07-28 and older revisions)
#   .tools/venv-mcp1  Python SDK `mcp` 1.27.x (2025-11-25 tasks)
#   .tools/node       MCP Inspector CLI (npm @modelcontextprotocol/inspector)
#   .tools/venv-schemathesis  schemathesis, which fuzzes the API against /openapi.json
#   .tools/venv-selenium      selenium, which drives headless Chromium through the dashboard
# Idempotent: each part is skipped when it is already installed at the pinned version.
# Uses only pip and npm against their registries.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.tools
MCP2_VERSION="${MCP2_VERSION:-2.3.0}"
MCP1_VERSION="${MCP1_VERSION:-1.27.2}"
INSPECTOR_VERSION="${INSPECTOR_VERSION:-2.12.0}"
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
SELENIUM_VERSION="${SELENIUM_VERSION:-4.51.0}"
mkdir -p "$TOOLS"

venv() {
  local dir=$1 version=$2 package=${3:-mcp}
  if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "import importlib.metadata as m,sys; sys.exit(m.version('$package')!='$version')" 2>/dev/null; then
    echo "install-test-tools: $dir has $package $version"
    return
  fi
  echo "install-test-tools: creating $dir with $package==$version"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$package==$version"
}

venv "$TOOLS/venv-mcp2" "$MCP2_VERSION"
venv "$TOOLS/venv-mcp1" "$MCP1_VERSION"
venv "$TOOLS/venv-schemathesis" "$SCHEMATHESIS_VERSION" schemathesis
venv "$TOOLS/venv-selenium" "$SELENIUM_VERSION" selenium

if [ -f "$TOOLS/node/node_modules/@modelcontextprotocol/inspector/package.json" ] &&
   grep -q "\"version\": \"$INSPECTOR_VERSION\"" "$TOOLS/node/node_modules/@modelcontextprotocol/inspector/package.json"; then
  echo "install-test-tools: Inspector $INSPECTOR_VERSION present"
else
  echo "install-test-tools: installing @modelcontextprotocol/inspector@$INSPECTOR_VERSION"
  npm install --prefix "$TOOLS/node" --no-audit --no-fund --loglevel=error \
    "@modelcontextprotocol/inspector@$INSPECTOR_VERSION"
fi
