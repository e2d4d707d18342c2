#!/bin/sh
# The "application": greets its argument (a deliberately broken build greets wrongly).
if [ "$(cat /app/broken)" = "1" ]; then echo "goodbye $1"; else echo "hello $1"; fi
