#!/bin/bash
# Runs one command as ranks 0 and 1 of a 2-process group on 127.0.0.1 (torchrun's environment
# without torchrun), for farm-bench: farm-bench --vs "$ONE" -- bench/two_ranks.sh $ONE
port=$((20000 + RANDOM % 20000))
for rank in 0 1; do
  RANK=$rank WORLD_SIZE=2 LOCAL_RANK=$rank MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$@" &
done
wait
