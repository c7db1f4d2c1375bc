#!/bin/bash
# usage: ab.sh REPS OUT BIN_A BIN_B : interleaves `compare 1 3 1,64` runs of two binaries
REPS=$1; OUT=$2; A=$3; B=$4
: > $OUT
for r in $(seq 1 $REPS); do
  if [ $((r % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for w in $order; do
    if [ $w = A ]; then bin=$A; else bin=$B; fi
    $bin compare 1 3 1,64 | grep "^conc=" | sed "s/^/bin=$w /" >> $OUT
  done
done
