#!/usr/bin/env python3
"""make check-mutations: break the library on purpose, one small change at a
time, and check that the tests notice.

Each mutation in tests/mutations/mutations.txt names a literal search
string that must occur exactly once in lib/*.c (whichever file: the list
survives code moving between files), its replacement, and the suites
expected to kill it.  For each mutation this script

  1. applies it to a scratch copy of the tree (the working tree's tracked
     and untracked, not ignored, files, copied into a temporary directory;
     the checkout itself is never modified),
  2. rebuilds what the suites need (make, incremental),
  3. runs every listed suite, and
  4. restores the file.

A mutation is killed when a suite fails (non-zero exit, or a hang cut by
the time limit).  Every listed suite must kill its mutation, so that the
list stays true; a mutation that survives one of them fails the run.  The
suites also run once on the unmutated copy first: they must pass there.

Environment:
  MUTATIONS=a,b    only the mutations whose name contains a or b
  MUTATION_DISCOVER=1
                   also run every unit binary and every integration suite
                   on each mutation and print which kill it (slow; to
                   choose the suites of a new mutation)
  MUTATION_SHARD=k/n
                   only the mutations whose position in the list is k
                   modulo n (0 <= k < n); k may be `day` (the UTC day
                   number) or `commit` (HEAD's hash), so that successive
                   days or commits rotate through the n shards
  MUTATION_BUDGET_SECONDS=N
                   start no mutation once N seconds have passed (the
                   baseline included); those left are reported as not
                   run, not as failures
  KEEP=1           keep the scratch copy (its path is printed)
  MUTATION_VERBOSE=1
                   under each KILLED line, the last output line of each
                   killing suite (to see that it failed on the rule, not
                   on something else)
  SUITE_DIR        the JSON Schema Test Suite (default ../shared/...)

Every mutation of the list is located before anything runs, also those a
shard or MUTATIONS leaves out: a search text that no longer occurs exactly
once in lib/*.c (a line renamed or moved by a change) fails the run at
once, naming the mutation, rather than turning into a silent skip or a
"kill" of code that is not there.

  run.py --check-list
                   only that check, and that each kill: line names a suite
                   that exists (a unit binary's source and, with a pattern,
                   a case it matches; an integration file; an ffi test);
                   no build, well under a second: `make test` runs it
                   (make check-mutation-list), so a change that breaks a
                   mutation's search text fails there, not days later in
                   one CI shard

Suite syntax (one `kill:` line each):
  unit test_timer [PATTERN]       a unit binary (all its tests, or those
                                  matching PATTERN, e.g. 'test_close_*')
  integration test_x.py [CASE]    an integration suite, CASE as it takes it
  node [caseName]                 tests/integration/node_ws.sh
  ffi [pattern]                   the Python binding's tests (unittest -k)
  schema                          the JSON Schema Test Suite runner
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PY = os.environ.get("PYTHON", "/usr/bin/python3")
SUITE_TIMEOUT = 240  # seconds per suite run; a hang counts as a kill


class Mutation:
    def __init__(self, name):
        self.name = name
        self.why = ""
        self.kill = []      # suite specs
        self.search = None
        self.replace = None
        self.file = None    # lib/x.c where the search string is


def parse(path):
    """The block format of mutations.txt (see its header)."""
    muts, cur, mode, buf = [], None, None, []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        if mode in ("search", "replace"):
            if line.startswith("--- "):
                text = "\n".join(buf)
                setattr(cur, mode, text)
                buf, mode = [], None
            else:
                buf.append(line)
                continue
        if line.startswith("=== "):
            cur = Mutation(line[4:].strip())
            muts.append(cur)
        elif line.startswith("--- search"):
            mode = "search"
        elif line.startswith("--- replace"):
            mode = "replace"
        elif line.startswith("--- end"):
            if cur is None or cur.search is None or cur.replace is None:
                sys.exit(f"{path}:{n}: '--- end' without search and replace")
        elif line.startswith("why:") and cur:
            cur.why = line[4:].strip()
        elif line.startswith("kill:") and cur:
            cur.kill.append(line[5:].split())
        elif line.strip() and not line.startswith("#"):
            sys.exit(f"{path}:{n}: cannot parse: {line!r}")
    names = [m.name for m in muts]
    dup = {x for x in names if names.count(x) > 1}
    if dup:
        sys.exit(f"{path}: duplicate names {sorted(dup)}")
    for m in muts:
        if not m.kill:
            sys.exit(f"{path}: {m.name}: no kill: line")
        if m.search == m.replace:
            sys.exit(f"{path}: {m.name}: replacement equals the search")
    return muts


def copy_tree(dst):
    files = subprocess.run(
        ["git", "-C", ROOT, "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True, check=True).stdout.decode().split("\0")
    for rel in files:
        if not rel:
            continue
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src) or os.path.islink(src):
            continue
        out = os.path.join(dst, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copy2(src, out)
    nm = os.path.join(ROOT, "tests", "integration", "node", "node_modules")
    if os.path.isdir(nm):
        os.symlink(nm, os.path.join(dst, "tests", "integration", "node",
                                    "node_modules"))


def locate(scratch, m):
    """The one lib/*.c file holding m.search; exits when not exactly one
    occurrence in all of them."""
    hits = []
    for path in sorted(glob.glob(os.path.join(scratch, "lib", "*.c"))):
        with open(path, encoding="utf-8") as f:
            k = f.read().count(m.search)
        if k:
            hits.append((os.path.relpath(path, scratch), k))
    total = sum(k for _, k in hits)
    if total != 1:
        where = ", ".join(f"{p} x{k}" for p, k in hits) or "nowhere"
        return f"search string found {total} times in lib/*.c ({where})"
    m.file = hits[0][0]
    return None


def unit_matches(name, pat):
    """tests/unit/run.h's (cmocka's) matcher: the whole name, '*' any run,
    '?' one character."""
    import fnmatch
    return fnmatch.fnmatchcase(name, pat.replace("[", "[[]"))


def check_specs(tree, m):
    """Problems with m's kill: lines in the tree `tree` (a list of text)."""
    out = []
    for spec in m.kill:
        kind, args = spec[0], spec[1:]
        if kind == "unit":
            if not args:
                out.append("'kill: unit' without a binary")
                continue
            src = os.path.join(tree, "tests", "unit", args[0] + ".c")
            if not os.path.isfile(src):
                out.append(f"no unit test source tests/unit/{args[0]}.c")
                continue
            if len(args) > 1:
                with open(src, encoding="utf-8") as f:
                    names = re.findall(r"cmocka_unit_test\w*\(\s*(\w+)",
                                       f.read())
                if not any(unit_matches(n, args[1]) for n in names):
                    out.append(f"no case of {args[0]} matches {args[1]!r}")
        elif kind == "integration":
            if not args or not os.path.isfile(os.path.join(
                    tree, "tests", "integration", args[0])):
                out.append(f"no integration suite {' '.join(args[:1])!r}")
        elif kind == "ffi":
            t = os.path.join(tree, "examples", "ffi", "python", "tests",
                             "test_wsmsg.py")
            with open(t, encoding="utf-8") as f:
                text = f.read()
            if args and args[0] not in text:
                out.append(f"no binding test matches {args[0]!r}")
        elif kind == "node":
            if not os.path.isfile(os.path.join(tree, "tests", "integration",
                                               "node_ws.sh")):
                out.append("no tests/integration/node_ws.sh")
        elif kind != "schema":
            out.append(f"unknown suite kind {kind!r}")
    return out


def check_list(muts):
    """run.py --check-list: every search text where it must be, every
    suite there; 0 or 1."""
    problems = []
    for m in muts:
        e = locate(ROOT, m)
        if e:
            problems.append(f"{m.name}: {e}")
        problems += [f"{m.name}: {x}" for x in check_specs(ROOT, m)]
    for x in problems:
        print(f"check-mutation-list: FAIL: {x}")
    if problems:
        print("check-mutation-list: a change moved or renamed what a "
              "mutation searches for: update its block in "
              "tests/mutations/mutations.txt (docs/testing.md, Mutations)")
        return 1
    print(f"check-mutation-list: {len(muts)} mutations, each search text "
          "found once in lib/*.c, every suite present")
    return 0


def suite_targets(spec):
    kind = spec[0]
    if kind == "unit":
        return [f".build/tests/{spec[1]}"]
    if kind == "schema":
        return [".build/tests/suite_runner"]
    if kind in ("integration", "node"):
        return ["lib", "examples", "examples/wsbench"]
    if kind == "ffi":
        return ["lib"]
    raise SystemExit(f"unknown suite kind {kind!r}")


def suite_cmd(spec, suite_dir):
    """(argv, extra env) of one suite run."""
    kind, args = spec[0], spec[1:]
    env = {"ECHO_SERVERS": "echo_server", "CONF_SERVERS": "echo_server",
           "ECHO_SERVER": "echo_server"}
    if kind == "unit":  # an optional test-name pattern (tests/unit/run.h)
        return [f".build/tests/{args[0]}", *args[1:2]], {}
    if kind == "schema":
        return [".build/tests/suite_runner", suite_dir], {}
    if kind == "integration":
        if len(args) > 1:
            env["CASE"] = " ".join(args[1:])
        return [PY, f"tests/integration/{args[0]}"], env
    if kind == "node":
        if args:
            env["CASE"] = args[0]
        return ["bash", "tests/integration/node_ws.sh"], env
    if kind == "ffi":
        argv = [PY, "examples/ffi/python/tests/test_wsmsg.py"]
        if args:
            argv += ["-k", args[0]]
        return argv, {}
    raise SystemExit(f"unknown suite kind {kind!r}")


def label(spec):
    return " ".join(spec)


def build(scratch, targets):
    p = subprocess.run(["make", "-s", "--no-print-directory", *targets],
                       cwd=scratch, capture_output=True, text=True)
    return p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


def run_suite(scratch, spec, suite_dir):
    """(failed, how, seconds)"""
    argv, extra = suite_cmd(spec, suite_dir)
    env = dict(os.environ, **extra)
    env.pop("CI", None)  # a mutation run is not CI's skip policy
    t = time.monotonic()
    try:
        p = subprocess.run(argv, cwd=scratch, env=env, capture_output=True,
                           text=True, errors="replace", timeout=SUITE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return True, f"hung ({SUITE_TIMEOUT} s)", time.monotonic() - t
    lines = (p.stdout + p.stderr).strip().splitlines() or [""]
    # the first line naming an error (an assertion's message) says more
    # than the summary at the end
    why = next((x for k in ("FAIL ", "rror:", "rror") for x in lines
                if k in x), lines[-1]).strip()
    return p.returncode != 0, f"exit {p.returncode}: {why[:200]}", \
        time.monotonic() - t


def all_suites(tree):
    """Every suite of the copy `tree` (for MUTATION_DISCOVER)."""
    specs = [["unit", os.path.basename(p)[:-2]]
             for p in sorted(glob.glob(os.path.join(tree, "tests", "unit",
                                                    "test_*.c")))]
    specs += [["integration", os.path.basename(p)]
              for p in sorted(glob.glob(os.path.join(
                  tree, "tests", "integration", "test_*.py")))]
    return specs + [["node"], ["ffi"], ["schema"]]


def shard_of(spec):
    """(k, n, text) of MUTATION_SHARD=k/n, k a number, `day` or `commit`."""
    try:
        k, n = spec.split("/")
        n = int(n)
        if n < 1:
            raise ValueError
        if k == "day":
            k = int(time.time() // 86400) % n
        elif k == "commit":
            head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"],
                                  capture_output=True, text=True,
                                  check=True).stdout.strip()
            k = int(head, 16) % n
        else:
            k = int(k)
        if not 0 <= k < n:
            raise ValueError
    except (ValueError, subprocess.CalledProcessError):
        sys.exit(f"check-mutations: MUTATION_SHARD={spec!r}: want k/n with "
                 "0 <= k < n, k a number, day or commit")
    return k, n


def main():
    muts = parse(os.path.join(HERE, "mutations.txt"))
    total = len(muts)
    if sys.argv[1:] == ["--check-list"]:
        return check_list(muts)
    if sys.argv[1:]:
        sys.exit("usage: run.py [--check-list] (the rest is environment: "
                 "see the top of this file)")
    every = list(muts)
    shard = os.environ.get("MUTATION_SHARD", "")
    if shard:
        k, n = shard_of(shard)
        muts = [m for i, m in enumerate(muts) if i % n == k]
        print(f"check-mutations: shard {k}/{n} of {total} mutations "
              f"(MUTATION_SHARD={shard})", flush=True)
    budget = float(os.environ.get("MUTATION_BUDGET_SECONDS", "0") or 0)
    only = [s for s in os.environ.get("MUTATIONS", "").split(",") if s]
    if only:
        muts = [m for m in muts if any(s in m.name for s in only)]
        if not muts:
            print(f"check-mutations: FAIL: MUTATIONS={','.join(only)} "
                  "matches no mutation")
            return 1
    discover = os.environ.get("MUTATION_DISCOVER") == "1"
    suite_dir = os.path.abspath(os.environ.get(
        "SUITE_DIR", os.path.join(ROOT, "..", "shared", "data",
                                  "json-schema-test-suite")))
    # the copy goes one level down, next to a link to ../shared, so that
    # the suites find ../shared/data (the AsyncAPI schemas and examples)
    base = tempfile.mkdtemp(prefix="wsmsg-mutations-")
    scratch = os.path.join(base, "wsmsg")
    shared = os.path.abspath(os.path.join(ROOT, "..", "shared"))
    if os.path.isdir(shared):
        os.symlink(shared, os.path.join(base, "shared"))
    t0 = time.monotonic()
    try:
        os.mkdir(scratch)
        copy_tree(scratch)
        # every mutation of the list, not only this run's: a search text
        # a change broke fails every run, whichever shard it is in
        bad = [(m.name, e) for m in every if (e := locate(scratch, m))]
        if bad:
            for name, e in bad:
                print(f"check-mutations: FAIL: {name}: {e}")
            return 1
        specs = []
        for m in muts:
            for s in m.kill + (all_suites(scratch) if discover else []):
                if s not in specs:
                    specs.append(s)
        targets = sorted({t for s in specs for t in suite_targets(s)})
        print(f"check-mutations: {len(muts)} mutations, {len(specs)} suites; "
              f"scratch copy {scratch}", flush=True)
        ok, out = build(scratch, targets)
        if not ok:
            print(f"check-mutations: FAIL: the unmutated copy does not "
                  f"build:\n{out}")
            return 1
        for s in specs:  # the suites must pass before anything is broken
            failed, how, dt = run_suite(scratch, s, suite_dir)
            if failed:
                print(f"check-mutations: FAIL: {label(s)} fails without a "
                      f"mutation ({how})")
                return 1
        print(f"  baseline: every suite passes ({time.monotonic() - t0:.0f} s)",
              flush=True)
        killed, problems, skipped = 0, [], []
        for m in muts:
            if budget and time.monotonic() - t0 > budget:
                skipped.append(m.name)
                continue
            path = os.path.join(scratch, m.file)
            with open(path, encoding="utf-8") as f:
                orig = f.read()
            with open(path, "w", encoding="utf-8") as f:
                f.write(orig.replace(m.search, m.replace, 1))
            try:
                # only what this mutation's suites need: make rebuilds the
                # rest when a later mutation needs it
                mine = targets if discover else sorted(
                    {t for s in m.kill for t in suite_targets(s)})
                ok, out = build(scratch, mine)
                if not ok:
                    problems.append(f"{m.name}: does not compile")
                    print(f"  BROKEN {m.name} ({m.file}): does not compile:"
                          f"\n{out}", flush=True)
                    continue
                kills, survived, hows = [], [], []
                for s in m.kill:
                    failed, how, dt = run_suite(scratch, s, suite_dir)
                    (kills if failed else survived).append(
                        f"{label(s)} ({dt:.1f} s)")
                    if failed:  # how it failed: the rule, not a crash
                        hows.append(f"    {label(s)}: {how}")
                extra = []
                if discover:
                    for s in all_suites(scratch):
                        if s in m.kill:
                            continue
                        failed, how, dt = run_suite(scratch, s, suite_dir)
                        if failed:
                            extra.append(label(s))
                if kills and not survived:
                    killed += 1
                    print(f"  KILLED {m.name} ({m.file}) by "
                          f"{'; '.join(kills)}", flush=True)
                    if os.environ.get("MUTATION_VERBOSE") == "1":
                        print("\n".join(hows), flush=True)
                else:
                    problems.append(f"{m.name} survived "
                                    f"{'; '.join(survived)}")
                    print(f"  SURVIVED {m.name} ({m.file}): survived "
                          f"{'; '.join(survived)}"
                          + (f"; killed by {'; '.join(kills)}" if kills else ""),
                          flush=True)
                if discover:
                    print(f"    also killed by: {', '.join(extra) or 'nothing'}",
                          flush=True)
            finally:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(orig)
        ran = len(muts) - len(skipped)
        if skipped:
            print(f"  NOT RUN (over MUTATION_BUDGET_SECONDS={budget:g}): "
                  f"{', '.join(skipped)}", flush=True)
        print(f"check-mutations: {killed}/{ran} mutations killed in "
              f"{time.monotonic() - t0:.0f} s"
              + (f" ({len(skipped)} not run: time budget)" if skipped else "")
              + (f" ({total} in the list)" if ran != total else "")
              + (f"; FAILED: {'; '.join(problems)}" if problems else ""))
        return 0 if killed == ran and not problems else 1
    finally:
        if os.environ.get("KEEP") == "1":
            print(f"check-mutations: kept {scratch}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
