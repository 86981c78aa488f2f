#!/usr/bin/env bash
# The deploy build, as docs/deploy-aws.md has a user run it: `sam build` from the repository root
# with samconfig.toml (infra/template.yaml, the rust-cargolambda build method, arm64), then a check
# that each of the four functions' `bootstrap` files is an aarch64 Linux executable.
#
#   bash scripts/sam-build.sh
#
# Installs what the build needs, idempotently: the AWS tools (scripts/lambda-tools.sh: cargo-lambda
# with zig, the SAM CLI) and the aarch64 Rust standard library (rustup). Builds the four
# binaries in one cargo command first (see below). Prints the build's time.
#
# CHATFN_SAM_TARGET_DIR: cargo's target folder for the build (default: CARGO_TARGET_DIR, else
# target/, where a plain `sam build` puts it). The test command keeps it beside the tools, so a
# later run, even from a fresh clone, recompiles only what changed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export SAM_CLI_TELEMETRY=0

tools="$(bash "$root/scripts/lambda-tools.sh" | tail -n1)"
# The venv's python3 comes first: cargo lambda runs zig as `python3 -m ziglang` (the ziglang
# package the cargo-lambda package depends on) when no `zig` is on PATH.
export PATH="$tools:$PATH"
if ! command -v zig > /dev/null && ! python3 -m ziglang version > /dev/null 2>&1; then
  echo "no zig for cargo lambda: neither \`zig\` nor the ziglang package in $tools" >&2
  exit 1
fi

target=aarch64-unknown-linux-gnu
if command -v rustup > /dev/null; then
  rustup target add "$target"
elif [[ ! -d "$(rustc --print sysroot)/lib/rustlib/$target" ]]; then
  echo "the Rust standard library for $target is missing and there is no rustup to add it" >&2
  exit 1
fi

export CARGO_TARGET_DIR="${CHATFN_SAM_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}}"
# SAM runs one `cargo lambda build --release --arm64 --bin <function>` per function, and they
# wait on one another's lock of the target folder, so their links (thin LTO, minutes each) run
# one after the other. Built first in one cargo command, with the same flags, they link side
# by side; SAM's own builds then find them fresh and only copy them (docs/testing.md, "The deploy
# build", has the times).
echo "==> cargo lambda build --release --arm64, the four functions in one cargo command (target folder: $CARGO_TARGET_DIR)"
started=$SECONDS
cargo lambda build --release --arm64 --bin session-start --bin token-refresh --bin agent-turn \
  --bin event-sweeper
built=$((SECONDS - started))
echo "==> sam build (samconfig.toml)"
started=$SECONDS
sam build
echo "cargo lambda build took $built s, then sam build $((SECONDS - started)) s"

# The ELF header says what a file is: the magic, 64-bit (class 2), little-endian (data 1), an
# executable (e_type 2) or a position-independent one (3, what rustc links by default), for
# aarch64 (e_machine 183, EM_AARCH64).
elf_field() { # file offset size: the little-endian unsigned integer there
  od -An -j "$2" -N "$3" -t "u$3" --endian=little "$1" | tr -d ' '
}
for function in SessionStartFunction TokenRefreshFunction AgentTurnFunction EventSweeperFunction; do
  bootstrap=".aws-sam/build/$function/bootstrap"
  [[ -f "$bootstrap" && -x "$bootstrap" ]] || { echo "$bootstrap: missing or not executable" >&2; exit 1; }
  magic="$(od -An -N 4 -t x1 "$bootstrap" | tr -d ' ')"
  class="$(elf_field "$bootstrap" 4 1)" data="$(elf_field "$bootstrap" 5 1)"
  type="$(elf_field "$bootstrap" 16 2)" machine="$(elf_field "$bootstrap" 18 2)"
  if [[ "$magic" != 7f454c46 || "$class" != 2 || "$data" != 1 || ! "$type" =~ ^[23]$ || "$machine" != 183 ]]; then
    echo "$bootstrap is not an aarch64 Linux executable (magic $magic, class $class, data $data," \
      "type $type, machine $machine)" >&2
    exit 1
  fi
  echo "$bootstrap: aarch64 ELF executable, $(($(stat -c %s "$bootstrap") / 1024)) KiB"
done
