#!/bin/bash
f=$1
perf report -i $f.data --no-children --stdio --sort dso,sym 2>/dev/null | grep -v "^#" | grep -v "^$" > $f.rep
python3 - $f.rep <<'PY'
import sys,re
rows=[]
for l in open(sys.argv[1]):
    m=re.match(r'\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$',l)
    if m: rows.append((float(m.group(1)),m.group(2),m.group(3),m.group(4).strip()))
k=sum(r[0] for r in rows if r[2]=='k')
own=[r for r in rows if re.search(r'ldapmux(_core|_driver)?::|^metrics::|tracing::|tracing_core::',r[3]) and 'perfprobe::' not in r[3]]
core=sum(r[0] for r in own if 'ldapmux_core' in r[3]); drv=sum(r[0] for r in own if 'ldapmux_driver' in r[3])
print(f"kernel {k:.1f}%  pool-own user frames {sum(r[0] for r in own):.2f}% (core {core:.2f}, driver {drv:.2f}, adapter+metrics+tracing {sum(r[0] for r in own)-core-drv:.2f})")
print("top 12:"); [print(f"  {r[0]:5.2f}% [{r[2]}] {r[3][:90]}") for r in rows[:12]]
print("pool's own, top 10:"); [print(f"  {r[0]:5.2f}% {r[3][:100]}") for r in own[:10]]
PY
