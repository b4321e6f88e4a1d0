#!/bin/sh
# Run every integrity pass of the plane, gates included, and summarize.
# usage: run_gates.sh [PLANE]
set -eu

plane=${1:-main}

if cplane --plane "$plane" verify --all-passes; then
    echo "plane $plane: all gates pass"
else
    status=$?
    echo "plane $plane: findings above (exit $status)" >&2
    exit "$status"
fi
