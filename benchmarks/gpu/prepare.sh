#!/usr/bin/env bash
# Fill benchmarks/gpu/carry/ (git-ignored) on a machine WITH PyPI access, before the GPU call.
#
#   bash benchmarks/gpu/prepare.sh
#
# carry/gpu-anchor/  copy of ../shared/gpu-anchor (the anchor script, model configs, tokenizers)
# carry/whl/         wheels our code needs that the GPU image lacks or has too old
#                    (installed into /tmp/site_ours on the GPU machine)
# carry/anchor-whl/  the anchor's own wheels, exactly its README's list
#                    (installed into /tmp/site, which anchor_gpu.py puts on its subprocess's path)
#
# The GPU image (python 3.12) has torch 2.11, transformers 5.17, sentence-transformers 6.0.1,
# huggingface_hub 1.33, tokenizers 0.23.2, accelerate 1.15, pyarrow, pandas, xxhash, fsspec;
# no datasets, dill, multiprocess. The working tree plus carry/ must stay under 64 MiB.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ANCHOR_SRC="${ANCHOR_SRC:-$REPO/../shared/gpu-anchor}"
CARRY="$HERE/carry"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"

# Our code: sentence-transformers ~=6.2 (Transformer.unpad_inputs, EmbedDistillLoss, ...),
# transformers >=5.23, datasets 5.2 and its pure-Python deps the image lacks. fsspec is pinned
# to the version datasets 5.2 allows (fsspec<=2026.9.0) in case the image's is newer.
OUR_WHEELS=(
    sentence-transformers==6.2.0
    transformers==5.24.0
    datasets==5.2.0
    dill==0.4.1
    multiprocess==0.70.19
    fsspec==2026.9.0
    # Our Hub client (hub_client.py, imported by the package) needs huggingface_hub 2.4 (the
    # image has 1.33) with its HTTP stack, and tenacity.
    huggingface_hub==2.4.0
    httpx2==2.16.2
    httpcore2==2.16.2
    truststore==0.10.5
    hf-xet==1.8.0
    tenacity==9.2.1
)
# The anchor's README, step 1 (distil-trainer needs sentence-transformers < 5.4).
ANCHOR_WHEELS=(
    distil-trainer==0.1.27
    sentence-transformers==5.3.0
    datasets==5.2.0
    dill==0.4.1
    multiprocess==0.70.19
)

download() {
    local dest="$1"
    shift
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d "$dest" "$@" 2>&1 | { grep -v 'is ignored: it is neither' || true; }
    return "${PIPESTATUS[0]}"
}

[[ -f "$ANCHOR_SRC/anchor_gpu.py" ]] || { echo "ERROR: no anchor at $ANCHOR_SRC" >&2; exit 1; }
grep -qx 'benchmarks/gpu/carry/' "$REPO/.gitignore" ||
    { echo "ERROR: add benchmarks/gpu/carry/ to $REPO/.gitignore first" >&2; exit 1; }

rm -rf "$CARRY"
mkdir -p "$CARRY/whl" "$CARRY/anchor-whl"
cp -r "$ANCHOR_SRC" "$CARRY/gpu-anchor"
chmod -R u+w "$CARRY/gpu-anchor"
download "$CARRY/whl" "${OUR_WHEELS[@]}"
download "$CARRY/anchor-whl" "${ANCHOR_WHEELS[@]}"

# One wheel per package and folder, or the install on the GPU machine stops.
for dir in "$CARRY/whl" "$CARRY/anchor-whl"; do
    dupes=$(ls "$dir" | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
    [[ -z "$dupes" ]] || { echo "ERROR: two versions of $dupes in $dir" >&2; exit 1; }
done

echo "== carried wheels"
ls -la "$CARRY/whl" "$CARRY/anchor-whl"
echo "== sizes"
du -sh "$CARRY/gpu-anchor" "$CARRY/whl" "$CARRY/anchor-whl"
du -sh "$CARRY"
# What else travels: tracked and untracked-not-ignored files. Approximate it without git by the
# source folders (benchmarks/.work, data/, .venv are ignored and stay behind).
tree_kib=$(du -sk --exclude=carry --exclude=.work "$REPO/src" "$REPO/tests" "$REPO/conf" \
    "$REPO/benchmarks" "$REPO/notebooks" "$REPO"/*.md "$REPO/pyproject.toml" | awk '{s+=$1} END {print s}')
carry_kib=$(du -sk "$CARRY" | cut -f1)
total_mib=$(((tree_kib + carry_kib) / 1024))
echo "repo sources ~${tree_kib} KiB + carry ${carry_kib} KiB = ~${total_mib} MiB (limit 64 MiB)"
((total_mib < 62)) || { echo "ERROR: too close to the 64 MiB limit" >&2; exit 1; }
