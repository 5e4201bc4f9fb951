# Shared by tools/demo and tools/check: install what is missing, then build with meson.
# Sourced, not run. Works as root, or through sudo when it is there.

WSB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# What building needs, and what the tests add (their peers come from Debian too).
WSB_BUILD_PACKAGES="gcc libc6-dev pkg-config meson ninja-build libuv1-dev libssl-dev libinih-dev zlib1g-dev liburing-dev check node-llhttp scdoc"
WSB_TEST_PACKAGES="python3 python3-websockets python3-yaml procps systemd prometheus chromium"
# The compression test installs node's ws package with npm; an npm that came with nodejs will do.
# Debian's node-ws is its fallback when the npm registry cannot be reached.
command -v npm >/dev/null 2>&1 || WSB_TEST_PACKAGES="$WSB_TEST_PACKAGES nodejs npm"
WSB_TEST_PACKAGES="$WSB_TEST_PACKAGES node-ws"
# tools/package, and the test that builds and installs the package (logrotate -d reads its file).
WSB_PACKAGE_PACKAGES="debhelper dpkg-dev fakeroot lintian logrotate scdoc"
# The formatter is pinned: another clang-format version lays out some lines differently.
WSB_FORMAT_PACKAGES="clang-format-14"
WSB_CLANG_FORMAT=clang-format-14

wsb_say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs the Debian packages named that are not installed yet; apt-get update runs first, once.
wsb_ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; return 1; }
    sudo=sudo
  fi
  wsb_say "installing ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# wsb_build DIR [meson options...]: configures DIR the first time, applies the options named to
# an existing one (so tools/demo and tools/check share build/), then builds.
wsb_build() {
  local dir=$1
  shift
  if [ ! -f "$WSB_ROOT/$dir/build.ninja" ]; then
    rm -rf "${WSB_ROOT:?}/$dir"
    wsb_say "configuring $dir $*"
    meson setup "$WSB_ROOT/$dir" "$WSB_ROOT" "$@"
  elif [ $# -gt 0 ]; then
    meson configure "$WSB_ROOT/$dir" "$@" >/dev/null
  fi
  wsb_say "building $dir"
  ninja -C "$WSB_ROOT/$dir"
}
