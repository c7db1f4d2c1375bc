#!/bin/bash
# usage: cg.sh BIN KIND CONC N OUTPREFIX -> prints total Ir
BIN=$1; KIND=$2; CONC=$3; N=$4; OUT=$5
valgrind --tool=callgrind --callgrind-out-file=$OUT.cg.out $BIN count $KIND $CONC $N >$OUT.log 2>&1
grep -E "^(summary|totals):" $OUT.cg.out | head -1 | awk '{print $2}'
