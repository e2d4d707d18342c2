#!/bin/sh
# The image's own tests, run with `kiln run --entrypoint /app/test.sh IMAGE`: exit status 0 only when they pass.
out=$(/app/greet.sh kiln)
if [ "$out" = "hello kiln" ]; then echo "ok - greet"; else echo "not ok - greet: got '$out'"; exit 1; fi
