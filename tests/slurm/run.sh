#!/usr/bin/env bash
# scripts/slurm-batch on a real single-node Slurm cluster that this test
# starts itself: Debian's slurm-wlm and munge (apt-installed when missing and
# we are root; skipped with a message otherwise), slurmctld, slurmd and
# munged on localhost with their configuration, state and sockets in a
# temporary folder, nothing of the system's touched.
#
# 1. Nine shapes (one malformed) over four array tasks: every good shape is
#    ok, the bad one failed with its message, its task exited 1, and the merge
#    ran after the last task all the same and holds all nine rows.
# 2. A slower run over three tasks, one task cancelled after its first
#    shape: the merge names the missing shapes and fails, resubmitting while
#    the old jobs are queued is refused, and the resubmitted command skips
#    every finished shape (untouched files, `resumed` records) and completes
#    the table.
#
# Needs the hisdf binary: target/release/hisdf (scripts/cargo build
# --release), or $HISDF. About a minute on two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

missing=false
for tool in slurmctld slurmd sbatch munged; do
    command -v "$tool" >/dev/null || missing=true
done
if $missing; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            slurm-wlm munge >/dev/null
    else
        echo "slurm test: SKIPPED (Slurm is not installed and we are not root;" \
            "apt-get install slurm-wlm munge)" >&2
        exit 0
    fi
fi
if [ "$(id -u)" != 0 ]; then
    # slurmd starts jobs as their user, which takes root.
    echo "slurm test: SKIPPED (slurmd needs root; run as root to test)" >&2
    exit 0
fi
hisdf=${HISDF:-${CARGO_TARGET_DIR:-$repo/target}/release/hisdf}
if [ ! -x "$hisdf" ]; then
    echo "slurm test: $hisdf missing; scripts/cargo build --release first, or set HISDF" >&2
    exit 1
fi
export HISDF=$hisdf

# A Slurm job running this test must not pass its own array or cluster on.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^SLURM_' || true)

scratch=$(mktemp -d /tmp/hisdf-slurm.XXXXXX)
# munged wants every folder above its socket searchable by all.
chmod 755 "$scratch"
mkdir -p "$scratch"/{key,run,state,spool,log,meshes}
pids=()
started=$SECONDS

fail() {
    echo "slurm test: FAILED: $*" >&2
    for f in "$scratch"/log/*.log "$scratch"/out*/slurm/*.log; do
        [ -f "$f" ] || continue
        echo "----- $f (last 40 lines)" >&2
        tail -n 40 "$f" >&2
    done
    exit 1
}

cleanup() {
    # Jobs first, so that slurmd does not leave job steps behind.
    if [ -f "$scratch/slurm.conf" ]; then
        local jobs
        mapfile -t jobs < <(squeue -h -o %A 2>/dev/null || true)
        [ "${#jobs[@]}" = 0 ] || scancel --quiet "${jobs[@]}" 2>/dev/null || true
        for _ in $(seq 20); do
            [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    # The daemons in the reverse of their start, by process id.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$scratch"
}
trap cleanup EXIT

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every $poll seconds
# until it succeeds.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local until=$((SECONDS + limit))
    until "$@"; do
        [ "$SECONDS" -lt "$until" ] || fail "no $what within $limit s"
        sleep "${poll:-0.5}"
    done
}

# --- the cluster -----------------------------------------------------------
if command -v mungekey >/dev/null; then
    mungekey --create --keyfile="$scratch/key/munge.key"
else
    dd if=/dev/urandom of="$scratch/key/munge.key" bs=1024 count=1 status=none
fi
chmod 700 "$scratch/key"
chmod 600 "$scratch/key/munge.key"
munged --foreground --key-file="$scratch/key/munge.key" --socket="$scratch/run/munge.sock" \
    --pid-file="$scratch/run/munged.pid" --seed-file="$scratch/run/munged.seed" \
    --log-file="$scratch/log/munged.log" &
pids+=($!)
wait_for 10 "munged socket" test -S "$scratch/run/munge.sock"

# Ports away from Slurm's defaults, so that a real Slurm here is not met.
port=${HISDF_TEST_SLURM_PORT:-26817}
memory=$(free -m | awk '/^Mem:/ {print int($2 * 0.8)}')
export SLURM_CONF="$scratch/slurm.conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=hisdf-test
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$scratch/run/munge.sock
StateSaveLocation=$scratch/state
SlurmdSpoolDir=$scratch/spool
SlurmctldPidFile=$scratch/run/slurmctld.pid
SlurmdPidFile=$scratch/run/slurmd.pid
SlurmctldLogFile=$scratch/log/slurmctld.log
SlurmdLogFile=$scratch/log/slurmd.log
# No cgroups (containers often lack them) and no accounting database.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
# Cores only: memory is not shared out, so tasks run side by side.
SelectTypeParameters=CR_Core
ReturnToService=2
MailProg=/bin/true
KillWait=5
# Ended jobs stay visible to scontrol for the whole test.
MinJobAge=900
NodeName=localhost CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -f "$SLURM_CONF" >"$scratch/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -N localhost -f "$SLURM_CONF" >"$scratch/log/slurmd.out" 2>&1 &
pids+=($!)
node_idle() { [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ]; }
wait_for 60 "idle node in sinfo" node_idle
echo "slurm test: cluster up ($(sinfo -V), $(nproc) CPUs) in $((SECONDS - started)) s"

# --- the catalogue ---------------------------------------------------------
# Eight boxes of different proportions and, sorted after them (index 8),
# the malformed mesh: in task 0 of four, task 2 of three.
box() {
    awk -v x="$2" -v y="$3" -v z="$4" 'BEGIN {
        for (i = 0; i < 8; i++)
            printf "v %g %g %g\n", (i % 2 ? x : -x), (int(i / 2) % 2 ? y : -y), (int(i / 4) ? z : -z)
        split("1 3 4 2|5 6 8 7|1 2 6 5|3 7 8 4|1 5 7 3|2 4 8 6", quads, "|")
        for (f = 1; f <= 6; f++) {
            split(quads[f], v, " ")
            printf "f %d %d %d\nf %d %d %d\n", v[1], v[2], v[3], v[1], v[3], v[4]
        }
    }' >"$1"
}
for i in 1 2 3 4 5 6 7 8; do
    box "$scratch/meshes/box$i.obj" 1 "0.$((3 + i % 5))" "0.$((2 + i % 7))"
done
printf 'v 0 0 0\nf 1 2 oops\n' >"$scratch/meshes/broken.obj"
# A list rather than the folder, relative to its own folder and in another
# order than the shapes' (hisdf sorts them).
printf '%s\n' broken.obj box{8..1}.obj >"$scratch/meshes/catalogue.txt"
manifest="$scratch/meshes/catalogue.txt"
# tests/batch.rs's TINY: seconds per shape on two cores.
cat >"$scratch/tiny.json" <<'EOF'
{
    "preset": "fast",
    "sampling": {
        "surface": 300,
        "shells": [{"count": 600, "variance": 1e-3}, {"count": 600, "variance": 1e-4}],
        "uniform": 300
    },
    "network": {"width": 16, "depth": 2},
    "training": {"iterations": 50, "batch_size": 256, "device": "cpu", "progress_every": 25},
    "extraction": {"resolution": 24},
    "evaluation": {"chamfer_points": 500, "emd_points": 40}
}
EOF
ids=(box1 box2 box3 box4 box5 box6 box7 box8 broken)
export HISDF_SLURM_POLL=1

# job_field JOB FIELD [TASK]: a field of `scontrol show job`.
job_field() {
    local line
    line=$(scontrol show job -o "$1" | grep -E "${3:+ArrayTaskId=$3 }" | head -n 1)
    sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $line"
}
# check_json PY: runs PY with `t` the merged table of $out, `rs` its records
# by id; an assertion that fails fails the test.
check_json() {
    python3 - "$out/results.json" "$1" <<'EOF' || fail "results.json of $out: $1"
import json, sys
t = json.load(open(sys.argv[1]))
rs = {r["id"]: r for r in t["results"]}
exec(sys.argv[2])
EOF
}

# --- 1: four tasks, one failing shape ------------------------------------
out="$scratch/out1"
set +e
timeout 300 scripts/slurm-batch --tasks 4 --wait "$manifest" "$out" \
    --config "$scratch/tiny.json" --keep-unconverged >"$scratch/submit1.log" 2>&1
code=$?
set -e
cat "$scratch/submit1.log"
[ "$code" = 1 ] || fail "slurm-batch --wait exited $code, not 1 (one shape fails)"
read -r array merge < <(sed -n 's/^submitted array job \([0-9]*\) .* merge job \([0-9]*\)$/\1 \2/p' \
    "$scratch/submit1.log") || true
[ -n "${merge:-}" ] || fail "no job ids in slurm-batch's output"
for k in 0 1 2 3; do
    grep -q "batch: shard $k/4 from Slurm job array $array (task $k of 0-3)" \
        "$out/slurm/batch-${array}_$k.log" || fail "task $k did not take shard $k/4 from Slurm"
done
# The failing shape fails its task; the other tasks and the merge succeed,
# and the merge started when the last task had ended (afterany).
[ "$(job_field "$array" JobState 0)" = FAILED ] || fail "task 0 (the broken mesh) is not FAILED"
last_end=""
for k in 1 2 3; do
    [ "$(job_field "$array" JobState $k)" = COMPLETED ] || fail "task $k is not COMPLETED"
done
for k in 0 1 2 3; do
    end=$(job_field "$array" EndTime $k)
    if [[ $end > $last_end ]]; then last_end=$end; fi
done
[ "$(job_field "$merge" JobState)" = COMPLETED ] || fail "merge job $merge is not COMPLETED"
[ "$(job_field "$merge" ExitCode)" = 0:0 ] || fail "merge job $merge did not exit 0"
merge_start=$(job_field "$merge" StartTime)
[[ ! $merge_start < $last_end ]] || fail "merge started at $merge_start, before the last task ended ($last_end)"
grep -q "^failed: broken: .*broken.obj" "$out/slurm/merge-$merge.log" ||
    fail "the merge's log does not name the failed shape"
check_json '
assert t["shapes_total"] == 9 and len(rs) == 9, rs.keys()
assert sorted(rs) == sorted("broken box1 box2 box3 box4 box5 box6 box7 box8".split())
assert rs["broken"]["status"] == "failed" and "broken.obj" in rs["broken"]["error"], rs["broken"]
for i, r in rs.items():
    if i != "broken":
        assert r["status"] == "ok" and r["triangles"] > 0 and r["metrics"]["chamfer"] > 0, r
        assert not r["resumed"], r
'
[ "$(wc -l <"$out/results.csv")" = 10 ] || fail "results.csv has not 9 rows and a header"
grep -q '^8,broken,.*,failed,' "$out/results.csv" || fail "results.csv lacks the failed row"
echo "slurm test: 1 (4 tasks, a failing shape, merge after all) OK at $((SECONDS - started)) s"

# --- 2: a task cancelled part way, then the same command again -------------
out="$scratch/out2"
# Slower training: a task's shapes take seconds each, time to cancel it
# between two of them.
job2=("$manifest" "$out" --config "$scratch/tiny.json" --keep-unconverged --iterations 3000)
scripts/slurm-batch --tasks 3 "${job2[@]}" >"$scratch/submit2.log" 2>&1 || { cat "$scratch/submit2.log"; fail "submission 2 refused"; }
read -r array merge < <(sed -n 's/^submitted array job \([0-9]*\) .* merge job \([0-9]*\)$/\1 \2/p' \
    "$scratch/submit2.log") || true
[ -n "${merge:-}" ] || fail "no job ids in slurm-batch's output"
# Task 0 of 3 holds indices 0, 3, 6: box1, box4, box7.
# Polled often: the cancel must land before the task's next two shapes end.
poll=0.1 wait_for 180 "first shape of task 0" test -f "$out/box1.result.json"
scancel "${array}_0"
seconds=$(python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["seconds"]["total"], 1))' \
    "$out/box1.result.json")
echo "slurm test: cancelled task ${array}_0 after box1 ($seconds s) at $((SECONDS - started)) s"
[ ! -f "$out/box7.result.json" ] || fail "task 0 finished its last shape before it was cancelled"
# Resubmitting while the first submission runs would do its shapes twice.
if scripts/slurm-batch --tasks 3 "${job2[@]}" >"$scratch/early.log" 2>&1; then
    fail "a resubmission while jobs $array $merge are queued was accepted"
fi
grep -q "still queued or running" "$scratch/early.log" || fail "no reason given: $(cat "$scratch/early.log")"

merge_ended() {
    case "$(job_field "$merge" JobState)" in
    PENDING | RUNNING | COMPLETING | CONFIGURING) return 1 ;;
    esac
}
wait_for 240 "end of merge job $merge" merge_ended
[ "$(job_field "$array" JobState 0)" = CANCELLED ] || fail "task 0 is not CANCELLED"
[ "$(job_field "$merge" JobState)" = FAILED ] || fail "merge job $merge is not FAILED with shapes missing"
[ "$(job_field "$merge" ExitCode)" = 1:0 ] || fail "merge job $merge did not exit 1"
# box7 (index 6) at least is missing, and said to be.
grep -qE "shapes not reported by any shard \(indices ([0-9]+, )*6(, |\))" "$out/slurm/merge-$merge.log" ||
    fail "the merge's log does not name the missing shapes"
# What was finished before the resubmission, and when its files were written.
finished=() outputs=()
for id in "${ids[@]}"; do
    if [ -f "$out/$id.result.json" ] && grep -q '"status": "ok"' "$out/$id.result.json"; then
        finished+=("$id")
        outputs+=("$out/$id.result.json" "$out/$id.safetensors" "$out/$id.obj")
    fi
done
stat -c '%y %n' "${outputs[@]}" >"$scratch/mtimes"
# Tasks 1 and 2 ran to the end; task 0 had done box1 and not box7 (box4
# may have been done as it was cancelled).
for id in box1 box2 box3 box5 box6 box8; do
    [[ " ${finished[*]} " == *" $id "* ]] || fail "$id not finished after the first run: ${finished[*]}"
done
[[ " ${finished[*]} " != *" box7 "* ]] || fail "box7 finished in a cancelled task"

set +e
timeout 300 scripts/slurm-batch --tasks 3 --wait "${job2[@]}" >"$scratch/submit3.log" 2>&1
code=$?
set -e
cat "$scratch/submit3.log"
[ "$code" = 1 ] || fail "the resubmission exited $code, not 1 (the broken mesh fails again)"
grep -q "dry run: 9 of 9 shapes, ${#finished[@]} of them finished before" "$scratch/submit3.log" ||
    fail "the resubmission did not see ${#finished[@]} finished shapes"
stat -c '%y %n' "${outputs[@]}" | diff "$scratch/mtimes" - || fail "finished shapes were written again"
check_json "
finished = set('${finished[*]}'.split())
assert len(rs) == 9, rs.keys()
assert rs['broken']['status'] == 'failed', rs['broken']
for i, r in rs.items():
    assert r['resumed'] == (i in finished), (i, r['resumed'])
    if i != 'broken':
        assert r['status'] == 'ok' and r['iterations'] == 3000, r
"
echo "slurm test: 2 (a cancelled task, then the same command: ${#finished[@]} finished shapes" \
    "skipped, table complete) OK at $((SECONDS - started)) s"
echo "slurm test: OK"
