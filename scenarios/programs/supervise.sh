#!/bin/sh
# A supervisor as many hosts have one (systemd's Restart=always, a runit or s6 service, a
# `while true` in a container): runs the program, and when it exits starts it again, at once
# when it stopped cleanly (a restart that was asked for, as by a deploy), a second later when
# it failed.
while true; do
  "$@"
  [ "$?" -eq 0 ] || sleep 1
done
