# Puts Node.js 24 on this shell's PATH when the node already there is older, without touching the
# system's: Node itself comes from the npm registry (the `node` package, a binary inside the
# package), installed once into .node24/ at the top of the checkout. Source it:
#
#   . scripts/use-node24.sh && node --version
#
# .ci/run does the same. With Node 24 or newer already on the PATH it changes nothing.

postern_node24() {
  local want=24 have top dir
  have=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  [ "$have" -ge "$want" ] && return 0
  top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || return 1
  dir="$top/.node24"
  if ! "$dir/node_modules/.bin/node" -e "process.exit(+process.versions.node.split('.')[0] >= $want ? 0 : 1)" 2>/dev/null; then
    command -v npm >/dev/null || { echo "use-node24: npm is needed to fetch Node.js $want (apt-get install npm)" >&2; return 1; }
    mkdir -p "$dir" || return 1
    # The package's preinstall script fetches the binary for this platform (also from the npm
    # registry); allowScripts approves it, so npm neither skips it nor warns.
    printf '{ "private": true, "allowScripts": { "node": true } }\n' >"$dir/package.json"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "node@$want" >&2 || {
      echo "use-node24: could not install node@$want from the npm registry into $dir" >&2
      return 1
    }
  fi
  export PATH="$dir/node_modules/.bin:$PATH"
  hash -r
}

postern_node24
