#!/bin/sh
# Check the hash chain of a ledger file written by lib.ledger.
# usage: verify_chain.sh LEDGER_FILE
set -eu

ledger=${1:?usage: verify_chain.sh LEDGER_FILE}
root=$(cd "$(dirname "$0")/../.." && pwd)

if PYTHONPATH="$root" python3 -c 'import sys; from lib.ledger.chain import main; sys.exit(main(sys.argv))' "$ledger"; then
    echo "ledger $ledger: chain intact"
else
    status=$?
    echo "ledger $ledger: chain broken (exit $status)" >&2
    exit "$status"
fi
