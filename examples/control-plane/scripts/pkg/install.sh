#!/bin/sh
# Install a package archive into the current plane through cplane.
# usage: install.sh ARCHIVE [PLANE]
set -eu

archive=${1:?usage: install.sh ARCHIVE [PLANE]}
plane=${2:-main}

[ -f "$archive" ] || { echo "install.sh: $archive not found" >&2; exit 2; }

cplane --plane "$plane" verify
cplane --plane "$plane" install "$archive"
cplane --plane "$plane" verify
echo "installed $archive into plane $plane"
