#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test DLLM:
# protoc and clang (system packages), the pinned Rust toolchain with the wasm target
# and rust-src, and the JS client's npm packages. Safe to run again: it only installs
# what is missing and takes a second when everything is there. `--tests` adds what only
# the tests need: Debian's Chromium, for the chat page's browser test (~15 s to install),
# and the OpenAI Python SDK in a virtual environment (DLLM_PY_ENV, ~10 s).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '[setup] %s\n' "$*"; }

# --- system packages -------------------------------------------------------------
packages=(protobuf-compiler clang libclang-dev pkg-config make)
if [[ "${1:-}" == "--tests" ]]; then
	# Debian's package; Ubuntu ships Chromium as a snap only (install it by hand there
	# and set CHROMIUM to its path).
	packages+=(chromium)
elif [[ -n "${1:-}" ]]; then
	say "unknown option $1 (the only one is --tests)" >&2
	exit 2
fi
missing=()
for pkg in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
	say "installing ${missing[*]}"
	sudo_cmd=()
	[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
	"${sudo_cmd[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- Rust --------------------------------------------------------------------------
if ! command -v rustup >/dev/null 2>&1; then
	say "rustup is missing: install it from https://rustup.rs and run this again" >&2
	exit 1
fi
toolchain="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$root/rust-toolchain.toml")"
if ! rustup toolchain list | grep -q "^$toolchain"; then
	say "installing Rust $toolchain"
	rustup toolchain install "$toolchain" --profile minimal
fi
installed_targets="$(rustup target list --installed --toolchain "$toolchain")"
grep -qx wasm32v1-none <<<"$installed_targets" || rustup target add wasm32v1-none --toolchain "$toolchain"
installed_components="$(rustup component list --installed --toolchain "$toolchain")"
for component in rust-src rustfmt clippy; do
	grep -q "^$component" <<<"$installed_components" || rustup component add "$component" --toolchain "$toolchain"
done

# --- JS client -----------------------------------------------------------------------
if ! command -v npm >/dev/null 2>&1; then
	say "Node.js and npm (>= 20) are missing: install them and run this again" >&2
	exit 1
fi
js="$root/scripts/js"
stamp="$js/node_modules/.package-lock.json"
if [[ ! -f "$stamp" || "$js/package-lock.json" -nt "$stamp" ]]; then
	say "installing JS packages (npm ci)"
	(cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- cargo-fuzz, for the fuzz targets in fuzz/ (scripts/fuzz.sh) ---------------------------
if [[ "${1:-}" == "--tests" ]] && ! cargo fuzz --version 2>/dev/null | grep -q "0.13.2"; then
	say "installing cargo-fuzz 0.13.2 (about 40 s)"
	cargo install cargo-fuzz --locked --version 0.13.2 --quiet
fi

# --- the tests' Python packages (the OpenAI Python SDK) ---------------------------------
if [[ "${1:-}" == "--tests" ]]; then
	source "$root/scripts/env.sh"
	venv="$DLLM_PY_ENV"
	requirements="$root/scripts/py/requirements.txt"
	# A stamp newer than the requirements, and an interpreter that still imports them.
	if [[ ! -f "$venv/.installed" || "$requirements" -nt "$venv/.installed" ]] ||
		! "$venv/bin/python" -c 'import openai' >/dev/null 2>&1; then
		command -v python3 >/dev/null 2>&1 || { say "python3 is missing: install it and run this again" >&2; exit 1; }
		say "installing the Python test packages into $venv"
		python3 -m venv --clear "$venv" || {
			say "python3 -m venv failed: install python3-venv (Debian/Ubuntu) and run this again" >&2
			exit 1
		}
		"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
		touch "$venv/.installed"
	fi
fi

say "ready"
