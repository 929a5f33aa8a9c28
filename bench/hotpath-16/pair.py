import re,statistics,sys
path,key,a,b=sys.argv[1:5]; fields=sys.argv[5].split(',')
maxsteal=float(sys.argv[6]) if len(sys.argv)>6 else 1e9
lines=[dict(re.findall(r'(\S+?)=(\S+)',l)) for l in open(path) if 'RESULT' in l]
pairs=[]; cur={}
for kv in lines:
    cur[kv[key]]=kv
    if a in cur and b in cur:
        pairs.append((cur[a],cur[b])); cur={}
q=[p for p in pairs if max(float(p[0].get('steal_s',0)),float(p[1].get('steal_s',0)))<=maxsteal]
for f in fields:
    r=[float(y[f])/float(x[f]) for x,y in q if float(x[f])]
    va=[float(x[f]) for x,y in q]; vb=[float(y[f]) for x,y in q]
    print(f"{f}: {a} {statistics.median(va):.3f} {b} {statistics.median(vb):.3f} ratio {statistics.median(r):.3f} [{min(r):.2f}..{max(r):.2f}] n={len(r)}")
