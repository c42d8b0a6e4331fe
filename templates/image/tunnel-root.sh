#!/bin/sh
# Gathers into ROOT only what a tunnel end runs, for the tunnel images' last stage
# (FROM scratch): /opt/ctun (Node, the bundle, the addon), the shell of the `ctun` wrapper, ip, iptables/ip6tables with their
# extensions (loaded with dlopen, so ldd does not name them), the Node runtime's and
# the addon's shared libraries, and the few files these read. A full Debian or Ubuntu
# base under a tunnel is 120 MB nobody runs. Beside them, a dpkg status of only the
# packages whose files went in, so the image's bill of materials lists what it holds.
# Usage: tunnel-root.sh ROOT (run in the build stage, as root, after apt-get install).
set -eu
root=$1
list=$(mktemp)

# A path as the file system resolves its folder (/lib -> usr/lib), the name kept.
canon() { printf '%s/%s\n' "$(readlink -f "$(dirname "$1")")" "$(basename "$1")"; }

# A path, every link of its symlink chain, and the file the chain ends in.
add() {
  p=$(canon "$1")
  while [ -L "$p" ]; do
    echo "$p" >>"$list"
    t=$(readlink "$p")
    case $t in /*) ;; *) t=$(dirname "$p")/$t ;; esac
    p=$(canon "$t")
  done
  [ -e "$p" ] && echo "$p" >>"$list"
  return 0
}

# The shared libraries a binary loads (ldd's "=> path" and the loader line).
libs() { ldd "$1" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p'; }

programs="/bin/sh $(command -v ip) $(command -v iptables) $(command -v ip6tables)"
for prog in $programs; do add "$prog"; done
# The merged-/usr links of the base (/bin -> usr/bin, ...), so paths read as they do there.
for top in /bin /sbin /lib /lib32 /lib64 /libx32; do
  if [ -L "$top" ]; then echo "$top" >>"$list"; fi
done
xtables=$(dirname "$(readlink -f "$(ldd "$(readlink -f "$(command -v iptables)")" | sed -n 's/.*libxtables[^ ]* => \(\/[^ ]*\).*/\1/p')")")/xtables
for f in "$xtables"/*.so; do add "$f"; done
for bin in $(sort -u "$list") /opt/ctun/bin/node /opt/ctun/native/*.node; do
  [ -f "$bin" ] || continue
  for lib in $(libs "$bin"); do add "$lib"; done
done
for f in /etc/iproute2 /etc/ethertypes /etc/protocols /etc/services /etc/nsswitch.conf /etc/passwd /etc/group \
  /etc/os-release /usr/lib/os-release /etc/xtables.conf /etc/apt/sources.list /etc/apt/sources.list.d; do
  if [ -e "$f" ] || [ -L "$f" ]; then add "$f"; fi
done

mkdir -p "$root/tmp" "$root/var/lib/dpkg" "$root/usr/local/bin"
chmod 1777 "$root/tmp"
# The `ctun` command on PATH (the root has no ln of its own).
ln -sf /opt/ctun/bin/ctun "$root/usr/local/bin/ctun"
sort -u "$list" | sed 's|^/||' | tar -cf - -C / --no-recursion -T - | tar -xpf - -C "$root"
# /etc/iproute2 and the apt sources folder came without their files (--no-recursion).
for d in /etc/iproute2 /etc/apt/sources.list.d; do
  if [ -d "$d" ]; then cp -a "$d/." "$root$d/"; fi
done

# The packages owning the files that went in (dpkg names them by the path it
# installed, which may be the unmerged /bin/ip of a /usr/bin/ip).
# One dpkg-query for all of them: it reads its whole database per call.
files=$(sort -u "$list" | while read -r f; do [ -f "$f" ] && [ ! -L "$f" ] && printf '%s\n%s\n' "$f" "${f#/usr}"; done)
# shellcheck disable=SC2086 # one argument per path (no spaces in these paths)
owners=$(dpkg-query -S $files 2>/dev/null | grep -v '^diversion by' | sed 's/: .*//; s/, /\n/g' | tr ',' '\n' | sed 's/^ *//; s/:.*//' | sort -u)
for pkg in $owners; do dpkg-query -s "$pkg"; echo; done >"$root/var/lib/dpkg/status"
rm -f "$list"

# The tunnel itself, then one time on every file: the layer is then the same bytes
# for the four images even when each is built anew (--no-cache), so a site loading
# all four carries it once.
mkdir -p "$root/opt"
cp -a /opt/ctun "$root/opt/"
find "$root" -exec touch -h -d @0 {} +
