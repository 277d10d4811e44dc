#!/bin/sh
# Build an OCI image of sluice from Debian packages alone: no Dockerfile, no
# base image, nothing but what `ldd sluice` needs.
#
#   deploy/image/build.sh [-b BUILD_DIR] [-o OUT_DIR] [-t TAG]
#
#   BUILD_DIR  meson build directory holding the sluice to ship (./build)
#   OUT_DIR    where rootfs/, rootfs.tar and oci/ go (BUILD_DIR/image)
#   TAG        the image's tag in OUT_DIR/oci (the project version)
#
# Steps: mmdebstrap extracts the runtime libraries (with their dependencies,
# from the Debian suite the build host runs) into OUT_DIR/rootfs; sluice,
# its example configs and a non-root user (sluice, 10001) are added; the
# rootfs is checked by running `sluice -t` on every bundled config inside
# it (chroot); it must be under 60 MB; umoci packs it as one layer of an OCI
# image layout in OUT_DIR/oci, with sluice as the entrypoint.
#
# Needs the Debian packages mmdebstrap and umoci (scripts/setup.sh --deploy)
# and Debian's mirror (SLUICE_DEBIAN_MIRROR, default http://deb.debian.org).
# Runs as root, or as a user with unprivileged user namespaces (unshare).
# To load the result into a container runtime:
#   skopeo copy oci:OUT_DIR/oci:TAG docker-daemon:sluice:TAG
#   skopeo copy oci:OUT_DIR/oci:TAG docker://REGISTRY/sluice:TAG
set -eu

cd "$(dirname "$0")/../.."
build=build
out=""
tag=""
while getopts b:o:t: o; do
	case "$o" in
	b) build=$OPTARG ;;
	o) out=$OPTARG ;;
	t) tag=$OPTARG ;;
	*) echo "usage: $0 [-b BUILD_DIR] [-o OUT_DIR] [-t TAG]" >&2; exit 2 ;;
	esac
done
[ -n "$out" ] || out=$build/image
bin=$build/sluice
[ -x "$bin" ] || { echo "image: no $bin (build first: ninja -C $build)" >&2; exit 1; }
[ -n "$tag" ] || tag=$("$bin" --version | awk '{print $2}')
for tool in mmdebstrap umoci; do
	command -v "$tool" >/dev/null || { echo "image: $tool is missing (scripts/setup.sh --deploy)" >&2; exit 1; }
done

# The Debian packages that hold the libraries sluice is linked against, as
# ldd lists them (so a new dependency cannot be forgotten); their own
# dependencies (libstdc++6 and libgcc-s1 for jemalloc) come with them.  The
# file may be known to dpkg by its /usr or its / path (merged /usr).
pkg_of() { dpkg -S "$1" 2>/dev/null || dpkg -S "/usr$1" 2>/dev/null || dpkg -S "${1#/usr}" 2>/dev/null; }
pkgs=$(ldd "$bin" | awk '$3 ~ /^\// { print $3 }' | while read -r lib; do pkg_of "$lib"; done |
	cut -d: -f1 | sort -u | paste -sd, -)
[ -n "$pkgs" ] || { echo "image: cannot tell which packages hold sluice's libraries" >&2; exit 1; }
mirror=${SLUICE_DEBIAN_MIRROR:-http://deb.debian.org}
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
uid=10001

if [ "$(id -u)" -eq 0 ]; then
	mode=root
	inroot() { chroot "$@"; }
else
	mode=unshare
	inroot() { unshare --map-root-user chroot "$@"; }
fi

rootfs=$out/rootfs
rm -rf "$rootfs" "$out/rootfs.tar" "$out/oci"
mkdir -p "$out"
# extract: the packages' files only, no maintainer scripts, no dpkg, no
# shell; nothing in the image runs but sluice.
mmdebstrap --quiet --mode="$mode" --variant=extract --include="$pkgs" \
	--customize-hook='rm -rf "$1"/usr/share/doc "$1"/usr/share/man "$1"/usr/share/locale "$1"/usr/share/lintian "$1"/var/cache/* "$1"/var/lib/apt/lists/*' \
	"$suite" "$rootfs" \
	"deb $mirror/debian $suite main" \
	"deb $mirror/debian $suite-updates main" \
	"deb $mirror/debian-security $suite-security main"

# What the extract variant leaves out: the user database, /tmp, the loader's cache.
install -d -m 0755 "$rootfs/etc/sluice" "$rootfs/usr/bin" "$rootfs/usr/share/sluice/examples"
install -d -m 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nsluice:x:%s:%s:sluice:/nonexistent:/usr/sbin/nologin\n' \
	"$uid" "$uid" >"$rootfs/etc/passwd"
printf 'root:x:0:\nsluice:x:%s:\n' "$uid" >"$rootfs/etc/group"
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
install -m 0755 -s "$bin" "$rootfs/usr/bin/sluice"
install -m 0644 conf/examples/*.yaml "$rootfs/usr/share/sluice/examples/"
install -m 0644 conf/examples/production.yaml "$rootfs/etc/sluice/sluice.yaml"
ldconfig -r "$rootfs" 2>/dev/null || true

# Build check: the binary runs inside the root filesystem, with nothing
# from the host, and accepts every bundled config.
for f in "$rootfs"/etc/sluice/sluice.yaml "$rootfs"/usr/share/sluice/examples/*.yaml; do
	inroot "$rootfs" /usr/bin/sluice -t -c "${f#"$rootfs"}"
done
inroot "$rootfs" /usr/bin/sluice --version

kb=$(du -sk "$rootfs" | cut -f1)
echo "image: root filesystem $((kb / 1024)) MB ($kb KiB)"
[ "$kb" -lt $((60 * 1024)) ] || { echo "image: over 60 MB" >&2; exit 1; }

# One layer, owned by root but for nothing sluice writes; the process runs
# as the sluice user, its config from a mounted ConfigMap or the example.
tar -C "$rootfs" --numeric-owner --sort=name -cf "$out/rootfs.tar" .
rootless=""
[ "$mode" = root ] || rootless=--rootless
umoci init --layout "$out/oci"
umoci new --image "$out/oci:$tag"
umoci insert $rootless --image "$out/oci:$tag" "$rootfs" /
umoci config --image "$out/oci:$tag" \
	--config.user="$uid:$uid" \
	--config.entrypoint=/usr/bin/sluice \
	--config.cmd=-c --config.cmd=/etc/sluice/sluice.yaml \
	--config.exposedports=8080/tcp --config.exposedports=9090/tcp \
	--config.workingdir=/ \
	--config.label=org.opencontainers.image.title=sluice \
	--config.label=org.opencontainers.image.version="$tag" \
	--author=sluice --history.created_by="deploy/image/build.sh"
umoci gc --layout "$out/oci"
layer=$(du -sk "$out/oci/blobs" | cut -f1)
echo "image: $out/oci:$tag ($((layer / 1024)) MB compressed)"
