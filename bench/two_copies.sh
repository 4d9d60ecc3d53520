#!/bin/bash
# Runs two independent copies of one command at once: what sharing this machine's cores costs a
# process, with no communication (the yardstick for bench/two_ranks.sh).
"$@" &
"$@"
wait
