#!/bin/sh
# Build a package archive from a directory holding manifest.toml.
# usage: pack.sh SRC_DIR OUT_DIR
set -eu

src=${1:?usage: pack.sh SRC_DIR OUT_DIR}
out=${2:?usage: pack.sh SRC_DIR OUT_DIR}
manifest="$src/manifest.toml"

[ -f "$manifest" ] || { echo "pack.sh: $manifest is missing" >&2; exit 2; }

field() {
    sed -n "s/^$1 *= *\"\(.*\)\"$/\1/p" "$manifest" | head -n 1
}

id=$(field id)
version=$(field version)
[ -n "$id" ] && [ -n "$version" ] || { echo "pack.sh: id and version are required" >&2; exit 2; }

mkdir -p "$out"
archive="$out/$id-$version.tar"
tar -C "$src" -cf "$archive" .
echo "packed $archive"
