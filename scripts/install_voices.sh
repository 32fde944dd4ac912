#!/usr/bin/env bash
# Install the voices and real speech that recipes/english uses, beside the system's own
# APT setup (nothing in /etc is edited):
#   Debian (contrib, non-free): espeak-ng, MBROLA voices, RHVoice English, pocketsphinx-testdata,
#     and the game The Ur-Quan Masters' voice and content packages (uqm-voice, uqm-content);
#   Ubuntu: the same packages come from multiverse;
#   PyPI (into .venv): Piper and its voice `joe`, pocketsphinx (the comparison system).
# As root it installs the Debian packages. Without root it downloads uqm-voice and
# uqm-content and unpacks them under $ASR_DATA (default ~/.local/share/asr); pass
# `--data-dir $ASR_DATA/uqm/usr/share/games/uqm/content` to `asr prepare uqm`. The other
# Debian voices then need an administrator (apt-get install espeak-ng mbrola ... as below);
# the recipe reports the engines it misses and goes on without them.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES="espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1
  mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 mbrola-de5 mbrola-de6 mbrola-fr1 mbrola-fr4
  mbrola-nl2 mbrola-sw1 mbrola-sw2 mbrola-af1 mbrola-hu1 mbrola-pl1 mbrola-ro1 mbrola-gr2
  rhvoice rhvoice-english pocketsphinx-testdata uqm-voice uqm-content"

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

if [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $DEBIAN_PACKAGES
else
  echo "install_voices.sh: not root: downloading only the UQM packages" >&2
  apt-get -o Debug::NoLocking=1 update -qq
  data=${ASR_DATA:-$HOME/.local/share/asr}
  mkdir -p "$data/uqm"
  (cd "$data" && apt-get -o Debug::NoLocking=1 download uqm-voice uqm-content)
  for deb in "$data"/uqm-*.deb; do dpkg-deb -x "$deb" "$data/uqm"; done
  echo "install_voices.sh: use asr prepare uqm --data-dir $data/uqm/usr/share/games/uqm/content" >&2
fi

if [ -x .venv/bin/python ]; then
  .venv/bin/python -m pip install -q -e '.[voices]'
fi
