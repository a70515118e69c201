#!/usr/bin/env bash
# The paper's experiments and our quality table, one command per group, for
# a CUDA machine:
#
#   experiments/reproduce.sh GROUP [OUT]
#
# GROUP is one of
#   regularisation  Table 1 / Fig. 2: plain, weight norm, skip, dropout (8 x 32)
#   size-depth      Fig. 3: depth 2-10 at width 512
#   size-width      Fig. 4: width 32-2048 at depth 8
#   size            both, one after the other (two device calls' worth)
#   sampling        Fig. 5 and 6: near-surface vs weighted sampling (8 x 512)
#   losses          Sec. 4.3: L1 + plateau vs curriculum, and our `detail` preset
#   paper           regularisation, sampling and losses in one go
#   quality         every mesh of data/meshes and data/meshes/quality with our
#                   default preset (detail) and the paper's (paper-curriculum)
#   encodings       the plain network vs Fourier features vs SIREN, same budget
#
# Each variant is one `hisdf batch` over the group's meshes, extracted at
# 512^3 (sparse) and evaluated with every metric; models that fail the
# convergence check are kept (--keep-unconverged) so that the table shows
# what they look like, with the check's verdict beside them. With GPUS=N (default: the
# number of GPUs nvidia-smi lists) every batch is split into N shards run
# at once, one per GPU, then merged. OUT (default out/experiments) receives
# per group: table.md (the results in the paper's format plus our metrics),
# per variant the batch's results.json/csv and configuration, and PNG
# pictures: each shape's original beside every variant's reconstruction.
# Models and meshes stay in $WORK (default /tmp/hisdf-experiments).
set -euo pipefail
cd "$(dirname "$0")/.."
group=${1:?usage: experiments/reproduce.sh GROUP [OUT]}
out=${2:-out/experiments}
hisdf=${HISDF:-target/release/hisdf}
work=${WORK:-/tmp/hisdf-experiments}
resolution=${RESOLUTION:-512}
if [ -z "${GPUS:-}" ]; then
    GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
fi
GPUS=$((GPUS > 0 ? GPUS : 1))
# Shards run at once: one per GPU by default; more than the GPUs share them
# (round robin), which overlaps one shard's CPU stages (sampling, checks,
# metrics) with another's training.
PARALLEL=${PARALLEL:-$GPUS}
configs=experiments/configs

paper_meshes() {
    printf '%s\n' "$PWD/data/meshes/Fennec_Fox.stl" "$PWD/data/meshes/block-2x4.stl"
}
encoding_meshes() {
    paper_meshes
    printf '%s\n' "$PWD"/data/meshes/quality/dragon.ply
}
quality_meshes() {
    paper_meshes
    ls "$PWD"/data/meshes/quality/*.ply
}

# run_variant GROUP VARIANT MANIFEST_FUNCTION ARGS...
run_variant() {
    local g=$1 v=$2 list=$3
    shift 3
    # ONLY="VARIANT ..." runs just those variants (to split a group over
    # several GPU calls); the tables and pictures show what exists.
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $v "* ]]; then
        return 0
    fi
    local dir="$work/$g/$v"
    mkdir -p "$dir" "$out/$g/$v"
    "$list" >"$work/$g/manifest.txt"
    # SHAPES="id ..." keeps just those meshes (by file name without
    # extension), to finish a group whose call ran out of time.
    if [ -n "${SHAPES:-}" ]; then
        local keep
        keep=$(while read -r m; do
            local b
            b=$(basename "${m%.*}")
            if [[ " $SHAPES " == *" $b "* ]]; then echo "$m"; fi
        done <"$work/$g/manifest.txt")
        printf '%s\n' "$keep" >"$work/$g/manifest.txt"
    fi
    cp "$work/$g/manifest.txt" "$out/$g/manifest.txt"
    local n
    n=$(wc -l <"$work/$g/manifest.txt")
    local shards=$((PARALLEL < n ? PARALLEL : n))
    echo "== $g / $v: $n shapes in $shards shard(s) on $GPUS GPU(s): $*"
    local t0=$SECONDS
    if [ "$shards" -le 1 ]; then
        "$hisdf" batch "$work/$g/manifest.txt" -o "$dir" --resolution "$resolution" --sparse \
            --keep-unconverged "$@" \
            >"$dir/log.txt" 2>&1 || echo "   batch exited with $? (see $dir/log.txt)"
    else
        local pids=()
        for ((k = 0; k < shards; k++)); do
            CUDA_VISIBLE_DEVICES=$((k % GPUS)) "$hisdf" batch "$work/$g/manifest.txt" -o "$dir" \
                --resolution "$resolution" --sparse --keep-unconverged --shard "$k/$shards" "$@" \
                >"$dir/log.$k.txt" 2>&1 &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || echo "   a shard exited with $?"; done
        "$hisdf" batch-merge "$dir" >/dev/null
    fi
    echo "   $((SECONDS - t0)) s"
    cp "$dir"/results.json "$dir"/results.csv "$out/$g/$v/" 2>/dev/null || true
    cp "$dir"/*config.json "$out/$g/$v/" 2>/dev/null || true
    tail -n 3 "$dir"/log*.txt >"$out/$g/$v/log-tail.txt" 2>/dev/null || true
}

# Pictures: per shape, the original and every variant's reconstruction,
# in $out/GROUP/SHAPE.png, or SHAPE-SUFFIX.png with PICTURE_SUFFIX set.
render_group() {
    local g=$1
    shift
    local suffix=${PICTURE_SUFFIX:+-$PICTURE_SUFFIX}
    [ -f "$work/$g/manifest.txt" ] || return 0
    # Only the variants run here (see ONLY) get a column.
    local present=()
    for v in "$@"; do
        [ -e "$work/$g/$v" ] && present+=("$v")
    done
    set -- "${present[@]}"
    while read -r mesh; do
        local id
        id=$(basename "${mesh%.*}")
        local tiles=("$mesh")
        for v in "$@"; do
            local obj
            obj=$(ls "$work/$g/$v/$id"*.obj 2>/dev/null | head -n 1 || true)
            tiles+=("${obj:--}")
        done
        local up=()
        case "$id" in bunny | dragon) up=(--y-up) ;; esac
        "$hisdf" render "${tiles[@]}" -o "$out/$g/$id$suffix.png" --size 320 "${up[@]}" 2>/dev/null ||
            echo "   could not render $id"
    done <"$work/$g/manifest.txt"
    echo "$*" >"$out/$g/picture-columns$suffix.txt"
}

table() {
    python3 experiments/table.py "$out/$1" "${@:2}" | tee "$out/$1/table.md"
}

regularisation() {
    local vs=(plain weight-norm skip dropout)
    run_variant regularisation plain paper_meshes --config $configs/table1.json
    run_variant regularisation weight-norm paper_meshes --config $configs/table1.json --weight-norm
    run_variant regularisation skip paper_meshes --config $configs/table1.json --skip 4
    run_variant regularisation dropout paper_meshes --config $configs/table1.json --dropout 0.2
    render_group regularisation "${vs[@]}"
    table regularisation "${vs[@]}"
}

# The size sweep is two groups (the paper's Fig. 3 and Fig. 4), each made to
# fit one 10-minute device call on one GPU; both write to $out/size, so the
# table and pictures show whatever of the sweep exists.
size_depth() {
    # SIZE_DEPTHS / SIZE_WIDTHS shorten the sweep where GPU time is short.
    for d in ${SIZE_DEPTHS:-2 3 4 5 6 7 8 9 10}; do
        run_variant size "depth-$d" paper_meshes --config $configs/table1.json --width 512 --depth "$d"
    done
    size_report
}

size_width() {
    for w in ${SIZE_WIDTHS:-32 64 128 256 512 1024 2048}; do
        if [ "$w" = 512 ]; then
            # 8 x 512 is the depth sweep's depth-8: run it under that name
            # unless the depth group already has.
            [ -f "$out/size/depth-8/results.json" ] ||
                run_variant size depth-8 paper_meshes --config $configs/table1.json --width 512 --depth 8
            continue
        fi
        run_variant size "width-$w" paper_meshes --config $configs/table1.json --width "$w" --depth 8
    done
    size_report
}

size_report() {
    local depths=() widths=() present=()
    for d in 2 3 4 5 6 7 8 9 10; do depths+=("depth-$d"); done
    for w in 32 64 128 256 depth-8 1024 2048; do
        [ "$w" = depth-8 ] && widths+=(depth-8) || widths+=("width-$w")
    done
    # Two pictures per shape: the depth sweep, and the width sweep (whose
    # 512 is depth-8).
    PICTURE_SUFFIX=depth render_group size "${depths[@]}"
    PICTURE_SUFFIX=width render_group size "${widths[@]}"
    for v in "${depths[@]}" "${widths[@]}"; do
        [ -f "$out/size/$v/results.json" ] && [[ " ${present[*]} " != *" $v "* ]] && present+=("$v")
    done
    [ "${#present[@]}" -gt 0 ] && table size "${present[@]}"
}

sampling() {
    local vs=(near-surface weighted)
    run_variant sampling near-surface paper_meshes --preset paper-l1 --clamp none
    run_variant sampling weighted paper_meshes --preset paper-l1 --clamp none --sampling weighted
    render_group sampling "${vs[@]}"
    table sampling "${vs[@]}"
}

losses() {
    local vs=(l1-plateau curriculum detail)
    run_variant losses l1-plateau paper_meshes --preset paper-l1
    run_variant losses curriculum paper_meshes --preset paper-curriculum
    run_variant losses detail paper_meshes --preset detail
    render_group losses "${vs[@]}"
    table losses "${vs[@]}"
}

quality() {
    local vs=(detail paper-curriculum)
    run_variant quality detail quality_meshes --preset detail
    run_variant quality paper-curriculum quality_meshes --preset paper-curriculum
    render_group quality "${vs[@]}"
    table quality "${vs[@]}"
}

encodings() {
    local vs=(plain fourier-6 siren)
    if [ -f "$out/quality/detail/results.json" ] && [ -d "$work/quality/detail" ]; then
        # The quality group's detail run is the plain network on these
        # meshes with the same seed and budget: reuse it.
        mkdir -p "$out/encodings/plain" "$work/encodings"
        cp "$out/quality/detail/results.json" "$out/encodings/plain/"
        ln -sfn "$work/quality/detail" "$work/encodings/plain"
        echo "== encodings / plain: taken from quality / detail"
    else
        run_variant encodings plain encoding_meshes --preset detail
    fi
    run_variant encodings fourier-6 encoding_meshes --preset detail --encoding fourier:6
    run_variant encodings siren encoding_meshes --preset detail --activation sine:30
    render_group encodings "${vs[@]}"
    table encodings "${vs[@]}"
}

case "$group" in
regularisation | sampling | losses | quality | encodings) "$group" ;;
size-depth) size_depth ;;
size-width) size_width ;;
size) size_depth && size_width ;;
paper) regularisation && sampling && losses ;;
quality+encodings) quality && encodings ;;
*)
    echo "unknown group $group" >&2
    exit 2
    ;;
esac
