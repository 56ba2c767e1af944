#!/usr/bin/env bash
# Model scanning speed, side by side with picklescan and modelscan (PyPI) on the same
# files, in one run:
#   (a) a large PyTorch-style zip checkpoint (SIZE_GB of tensor data, stored, as
#       torch.save writes it; a state dict of TENSORS tensors),
#   (b) a directory of FILES small pickles (state dicts of a few tensors).
# Each tool runs ROUNDS times per input (page cache warm: the files were just written);
# the median wall time is reported, and ratios against rampart. Each tool's verdict on
# a malicious control file is checked first, so a tool that scans nothing cannot win.
#
#   bench/modelscan.sh                 # SIZE_GB=2 TENSORS=2000 FILES=2000 ROUNDS=3
#
# Installs picklescan and modelscan with pip when missing. Writes
# bench/results/modelscan.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_GB=${SIZE_GB:-2}
TENSORS=${TENSORS:-2000}
FILES=${FILES:-2000}
ROUNDS=${ROUNDS:-3}
source bench/lib.sh
command -v picklescan >/dev/null || pip install -q picklescan
command -v modelscan >/dev/null || pip install -q modelscan
cargo build --release -q -p rampart
BIN=target/release
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

python3 - "$WORK" "$SIZE_GB" "$TENSORS" "$FILES" <<'PY'
import io, os, pickle, sys, types, zipfile
from collections import OrderedDict
work, size_gb, tensors, files = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def fake(name, **attrs):
    m = types.ModuleType(name)
    for k, v in attrs.items():
        v.__module__, v.__qualname__, v.__name__ = name, k, k
        setattr(m, k, v)
    sys.modules[name] = m
class FloatStorage: pass
def _rebuild_tensor_v2(*a): pass
fake("torch"); fake("torch._utils", _rebuild_tensor_v2=_rebuild_tensor_v2)
FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
sys.modules["torch"].FloatStorage = FloatStorage
class Ref:
    def __init__(self, pid): self.pid = pid
class T:
    def __init__(self, key, n): self.key, self.n = key, n
    def __reduce__(self):
        return (_rebuild_tensor_v2, (Ref(("storage", FloatStorage, self.key, "cpu", self.n)), 0, (self.n,), (1,), False, OrderedDict()))
class P(pickle.Pickler):
    def persistent_id(self, o): return o.pid if isinstance(o, Ref) else None
def dumps(o):
    b = io.BytesIO(); P(b, protocol=2).dump(o); return b.getvalue()
per = int(size_gb * (1 << 30) / tensors) // 4 * 4
state = OrderedDict((f"layers.{i}.weight", T(str(i), per // 4)) for i in range(tensors))
chunk = b"\x00" * per
with zipfile.ZipFile(os.path.join(work, "big.pt"), "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", dumps(state))
    z.writestr("archive/version", "3\n")
    for i in range(tensors):
        z.writestr(f"archive/data/{i}", chunk)
os.makedirs(os.path.join(work, "many"))
small = dumps(OrderedDict((f"w{i}", T(str(i), 4)) for i in range(4)))
for i in range(files):
    with open(os.path.join(work, "many", f"m{i:05}.pkl"), "wb") as f:
        f.write(small)
with open(os.path.join(work, "evil.pkl"), "wb") as f:
    f.write(b"cos\nsystem\n(S'echo'\ntR.")
PY

# Control: each tool must flag the malicious file (a non-zero exit or a finding).
"$BIN/rampart" scan "$WORK/evil.pkl" >/dev/null && { echo "rampart missed the control" >&2; exit 1; } || true
ps_out=$(picklescan -p "$WORK/evil.pkl" 2>&1 || true)
grep -qi "dangerous" <<<"$ps_out" || { echo "picklescan missed the control: $ps_out" >&2; exit 1; }
ms_out=$(modelscan -p "$WORK/evil.pkl" 2>&1 || true)
grep -qi "critical" <<<"$ms_out" || { echo "modelscan missed the control: $ms_out" >&2; exit 1; }

time_of() { # command... → seconds
  local s e
  s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N)
  awk -v a="$s" -v b="$e" 'BEGIN { printf "%.3f", b - a }'
}
for input in big.pt many; do
  for r in $(seq "$ROUNDS"); do
    time_of "$BIN/rampart" scan "$WORK/$input" >>"$WORK/rampart-$input"; echo >>"$WORK/rampart-$input"
    time_of picklescan -p "$WORK/$input" >>"$WORK/picklescan-$input"; echo >>"$WORK/picklescan-$input"
    time_of modelscan -p "$WORK/$input" >>"$WORK/modelscan-$input"; echo >>"$WORK/modelscan-$input"
  done
done
row() { # label input
  local r p m
  r=$(median "$WORK/rampart-$2" "$ROUNDS"); p=$(median "$WORK/picklescan-$2" "$ROUNDS"); m=$(median "$WORK/modelscan-$2" "$ROUNDS")
  echo "| $1 | $r s | $p s ($(ratio "$p" "$r")×) | $m s ($(ratio "$m" "$r")×) |"
}
big_bytes=$(stat -c %s "$WORK/big.pt")
mkdir -p bench/results
{
  echo "Run: \`bench/modelscan.sh\` (SIZE_GB=$SIZE_GB TENSORS=$TENSORS FILES=$FILES ROUNDS=$ROUNDS, median wall time, page cache warm) on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ); picklescan $(pip show picklescan 2>/dev/null | awk '/^Version/ {print $2}'), modelscan $(pip show modelscan 2>/dev/null | awk '/^Version/ {print $2}')"
  echo
  echo "| input | rampart scan | picklescan (× rampart's time) | modelscan (× rampart's time) |"
  echo "|---|---|---|---|"
  row "PyTorch zip checkpoint, $((big_bytes / 1048576)) MiB, $TENSORS tensors" big.pt
  row "$FILES small pickles in one directory" many
  echo
  echo "All three flagged the malicious control file before timing."
} >bench/results/modelscan.md
cat bench/results/modelscan.md
