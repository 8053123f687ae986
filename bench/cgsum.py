#!/usr/bin/env python3
"""Sums callgrind output files (instructions executed, event Ir).

usage: cgsum.py MESSAGES FILE...
prints one JSON object:
  {"files": N, "messages": MESSAGES, "total": Ir, "per_message": Ir / MESSAGES,
   "programs": {basename of the command: Ir, ...},
   "objects": [[object basename, Ir], ...]      (self cost per binary/library, largest first),
   "top": [[function, object, Ir], ...]}       (the 8 functions with the largest self cost)

Self cost is read from the cost lines themselves (a cost line right after a
calls= line is the inclusive cost of a call and is skipped), so a dump taken
after `callgrind_control --zero` is attributed correctly; callgrind_annotate
can charge such a dump to the frames that were on the stack when the
counters were zeroed. Files without a summary (a process killed by a signal
writes nothing) count 0.
"""
import json
import os
import re
import sys

NAMED = re.compile(r"^(fn|ob|cfn|cob|fl|fi|fe|cfi|cfl)=\((\d+)\)(?: (.*))?$")


def short_fn(name: str) -> str:
    """A C++ name without return type, argument list and template arguments."""
    name = name.replace("(anonymous namespace)", "{anon}")
    out, depth = [], 0
    for ch in name:
        if ch in "<{":
            if depth == 0:
                out.append("<>" if ch == "<" else "{}")
            depth += 1
        elif ch in ">}":
            depth = max(0, depth - 1)
        elif depth == 0:
            if ch == "(":
                break
            out.append(ch)
    s = "".join(out).strip().split(" ")[-1] or name
    return s if len(s) <= 70 else s[:67] + "..."


def parse(path):
    """(summary Ir or 0, command line, {(fn, ob): self Ir})."""
    names = {"fn": {}, "ob": {}}
    npos = 1
    summary = None
    cmd = ""
    self_cost = {}
    fn = ob = None
    fn_ob = {}
    skip_next = False
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) > npos and fn is not None:
                    try:
                        v = int(parts[npos])
                    except ValueError:
                        continue
                    key = (fn, fn_ob.get(fn, ob))
                    self_cost[key] = self_cost.get(key, 0) + v
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            m = NAMED.match(line)
            if m:
                kind, ident, text = m.groups()
                table = "fn" if kind in ("fn", "cfn") else "ob" if kind in ("ob", "cob") else None
                if table and text is not None:
                    names[table][ident] = text
                if kind == "fn":
                    fn = names["fn"].get(ident, ident)
                    fn_ob.setdefault(fn, ob)
                elif kind == "ob":
                    ob = names["ob"].get(ident, ident)
                continue
            if line.startswith("fn="):
                fn = line[3:]
                fn_ob.setdefault(fn, ob)
            elif line.startswith("ob="):
                ob = line[3:]
            elif line.startswith("positions:"):
                npos = len(line.split()) - 1
            elif line.startswith("summary:"):
                summary = int(line.split()[1])
            elif line.startswith("cmd:"):
                cmd = line[4:].strip()
    return summary or 0, cmd, self_cost


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    messages = int(sys.argv[1])
    total = 0
    programs = {}
    objects = {}
    funcs = {}
    for path in sys.argv[2:]:
        summary, cmd, costs = parse(path)
        total += summary
        prog = os.path.basename(cmd.split()[0]) if cmd else "?"
        programs[prog] = programs.get(prog, 0) + summary
        for (fn, ob), v in costs.items():
            obn = os.path.basename(ob or "?")
            objects[obn] = objects.get(obn, 0) + v
            k = (short_fn(fn), obn)
            funcs[k] = funcs.get(k, 0) + v
    top = sorted(funcs.items(), key=lambda kv: -kv[1])[:8]
    print(json.dumps({
        "files": len(sys.argv) - 2,
        "messages": messages,
        "total": total,
        "per_message": round(total / max(1, messages)),
        "programs": programs,
        "objects": sorted(objects.items(), key=lambda kv: -kv[1]),
        "top": [[f, o, v] for (f, o), v in top],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
