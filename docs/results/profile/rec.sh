#!/bin/bash
# usage: rec.sh BIN KIND CONC OUT [callgraph]
BIN=$1; KIND=$2; CONC=$3; OUT=$4; CG=${5:-dwarf}
$BIN profile $KIND $CONC 12 > $OUT.txt 2>&1 &
PID=$!
sleep 2.5
if [ "$CG" = none ]; then
  perf record -F 1999 -o $OUT.data -p $PID -- sleep 8 2>/dev/null >/dev/null
else
  perf record -F 999 --call-graph dwarf,32768 -o $OUT.data -p $PID -- sleep 8 2>/dev/null >/dev/null
fi
wait $PID
cat $OUT.txt | tail -1
