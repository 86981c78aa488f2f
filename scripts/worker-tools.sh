#!/usr/bin/env bash
# The toolchain that builds the Cloudflare Worker (functions/worker) for wasm32, installed once
# and cached. Idempotent, and quick once installed. Prints one line to `eval`:
#
#   eval "$(bash scripts/worker-tools.sh | tail -n1)"
#
# which puts Debian's wasm-capable cargo/rustc first on PATH and points worker-build at the local
# wasm-bindgen, esbuild and wasm-opt (so it downloads nothing). What it installs:
#
# - Debian's rustc-web, cargo-web, rust-web-src and lld-22 (rustup cannot add the wasm32 target
#   here), and the wasm32 standard library built once from rust-web-src into that toolchain;
# - worker-build and wasm-bindgen-cli (the version Cargo.lock pins) under the cache folder;
# - the npm packages of functions/worker (wrangler, esbuild, binaryen).
#
# CHATFN_TOOLS_DIR moves the cache (default: $XDG_CACHE_HOME/chatfn or ~/.cache/chatfn).
set -euo pipefail

WORKER_BUILD_VERSION=0.8.7
APT_PACKAGES=(rustc-web cargo-web rust-web-src lld-22)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${CHATFN_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatfn}"
tools="$cache/worker-tools"
mkdir -p "$tools"

log() { echo "worker-tools: $*" >&2; }

# 1. Debian's Rust 1.9x with a wasm32-capable compiler, and the linker.
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  sudo_cmd=()
  [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >&2
fi
debian_rustc=/usr/bin/rustc
debian_cargo=/usr/bin/cargo
[[ -x "$debian_rustc" && -x "$debian_cargo" ]] || { log "Debian's rustc/cargo are missing"; exit 1; }
linker="$(command -v wasm-ld-22 || true)"
[[ -n "$linker" ]] || { log "wasm-ld-22 (lld-22) is missing"; exit 1; }

# 2. The wasm32 standard library, built from rust-web-src once per Debian rustc version.
sysroot="$("$debian_rustc" --print sysroot)"
wasm_lib="$sysroot/lib/rustlib/wasm32-unknown-unknown/lib"
rustc_version="$("$debian_rustc" --version)"
std_stamp="$tools/wasm32-std.stamp"
if [[ -f "$std_stamp" && "$(cat "$std_stamp")" == "$rustc_version" ]] && compgen -G "$wasm_lib/libstd-*.rlib" >/dev/null; then
  log "the wasm32 standard library is in place ($rustc_version)"
else
  log "building the wasm32 standard library for $rustc_version (once, about a minute)"
  build="$tools/std-build"
  rm -rf "$build"
  mkdir -p "$build/src"
  printf '[package]\nname = "wasm32-std"\nversion = "0.0.0"\nedition = "2021"\n\n[lib]\npath = "src/lib.rs"\n' >"$build/Cargo.toml"
  echo '#![no_std]' >"$build/src/lib.rs"
  (
    cd "$build"
    PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$linker" \
      "$debian_cargo" build --quiet --release -Zbuild-std=std,panic_abort \
      --target wasm32-unknown-unknown >&2
  )
  mkdir -p "$wasm_lib"
  find "$build/target/wasm32-unknown-unknown/release/deps" -name 'lib*.rlib' ! -name 'libwasm32_std-*' \
    -exec cp {} "$wasm_lib/" \;
  rm -rf "$build"
  echo "$rustc_version" >"$std_stamp"
fi

# 3. worker-build, and wasm-bindgen-cli at exactly the lockfile's wasm-bindgen version.
bindgen_version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$root/Cargo.lock")"
[[ -n "$bindgen_version" ]] || { log "no wasm-bindgen in Cargo.lock"; exit 1; }
install_crate() { # crate version binary [extra cargo install flags]
  local crate="$1" version="$2" binary="$3"
  shift 3
  local stamp="$tools/$crate.version"
  if [[ -x "$tools/bin/$binary" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
    return
  fi
  log "installing $crate $version (once, a minute or two on 2 cores)"
  # Unoptimised: they only drive the build (wasm-bindgen takes seconds either way), and an
  # optimised install costs about ten minutes more on 2 cores.
  cargo install --quiet --debug --root "$tools" --version "$version" --force "$@" "$crate" >&2
  echo "$version" >"$stamp"
}
install_crate worker-build "$WORKER_BUILD_VERSION" worker-build --locked
install_crate wasm-bindgen-cli "$bindgen_version" wasm-bindgen

# 4. wrangler (with workerd), esbuild and binaryen's wasm-opt, from functions/worker's lockfile.
bash "$root/scripts/npm-install.sh" "$root/functions/worker" >&2
node_bin="$root/functions/worker/node_modules/.bin"

log "ready: $rustc_version, worker-build $WORKER_BUILD_VERSION, wasm-bindgen $bindgen_version"
echo "export PATH=\"/usr/bin:$tools/bin:$node_bin:\$PATH\" CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=\"$linker\" WASM_BINDGEN_BIN=\"$tools/bin/wasm-bindgen\" ESBUILD_BIN=\"$node_bin/esbuild\" WASM_OPT_BIN=\"$node_bin/wasm-opt\" WRANGLER_SEND_METRICS=false"
