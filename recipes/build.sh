#!/bin/sh
# Custom build of the com.edgefleet.Gateway component for the GDK CLI (`gdk component build`, run in
# this folder; see gdk-config.json). It writes what GDK expects from a custom build:
#   greengrass-build/recipes/recipe.yaml                                     (the recipe, unchanged;
#     `gdk component publish` fills in the version and the artifact URI)
#   greengrass-build/artifacts/com.edgefleet.Gateway/NEXT_PATCH/edgefleet.zip
# The zip holds the compiled code (dist/), package.json (the code is ESM) and the production
# node_modules; Greengrass unpacks it to {artifacts:decompressedPath}/edgefleet/.
set -eu

component=com.edgefleet.Gateway
version=NEXT_PATCH
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out="$here/greengrass-build"
artifacts="$out/artifacts/$component/$version"

command -v zip >/dev/null 2>&1 || { echo "build.sh: the 'zip' command is required" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT INT TERM

(cd "$root" && npm run build)
for dir in edge-component protocol analytics; do
  if [ -d "$root/dist/$dir" ]; then
    mkdir -p "$stage/dist"
    cp -R "$root/dist/$dir" "$stage/dist/$dir"
  fi
done
[ -f "$stage/dist/edge-component/main.js" ] || {
  echo "build.sh: $root/dist/edge-component/main.js was not built" >&2
  exit 1
}
cp "$root/package.json" "$root/package-lock.json" "$stage/"
(cd "$stage" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund)

mkdir -p "$artifacts" "$out/recipes"
rm -f "$artifacts/edgefleet.zip"
(cd "$stage" && zip -q -r -X "$artifacts/edgefleet.zip" .)
cp "$here/recipe.yaml" "$out/recipes/recipe.yaml"
echo "build.sh: wrote $artifacts/edgefleet.zip and $out/recipes/recipe.yaml"
