#!/usr/bin/env bash
# Builds the sandbox image's base and imports it into podman as $1: a Debian
# 12 root filesystem (mmdebstrap, from Debian's mirror: no image registry is
# reachable here) with PostgreSQL 15, the packages DocumentDB needs at run
# time, the three extensions install-engine.sh built on this machine, and the
# image's non-root user 65532. Only cmd/sandbox's image starts from it; the
# production images stay FROM scratch. An image already under the name $1 is
# kept (the Makefile names it by the extensions' digests and this script's).
set -euo pipefail

image=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
podman=${PODMAN:-podman}
# The Debian sources this machine's apt is set up with (its mirror, the
# updates and security suites), pasted into the image's sources as they are;
# DEBIAN_SOURCES names other files (sources.list or deb822 .sources).
if [ -n "${DEBIAN_SOURCES:-}" ]; then
	read -r -a sources <<<"$DEBIAN_SOURCES"
else
	sources=()
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -s "$f" ] && grep -qs '^[^#]*debian' "$f" && sources+=("$f")
	done
fi
[ ${#sources[@]} -gt 0 ] || {
	echo "sandbox-base: no Debian apt sources on this machine (set DEBIAN_SOURCES)" >&2
	exit 1
}
pg=15

if "$podman" image exists "$image"; then
	exit 0
fi
bash "$root/deployments/sandbox/install-engine.sh"
command -v mmdebstrap >/dev/null || {
	echo "sandbox-base: mmdebstrap is missing (apt-get install mmdebstrap)" >&2
	exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The extensions as install-engine.sh installed them.
ext=$work/ext
mkdir -p "$ext/usr/lib/postgresql/$pg/lib" "$ext/usr/share/postgresql/$pg/extension"
for l in pg_documentdb pg_documentdb_core pg_cron vector; do
	cp "/usr/lib/postgresql/$pg/lib/$l.so" "$ext/usr/lib/postgresql/$pg/lib/"
done
for f in /usr/share/postgresql/$pg/extension/{documentdb,pg_cron,vector}* \
	/usr/share/postgresql/$pg/extension/pinreset-engine.sha256sums; do
	cp "$f" "$ext/usr/share/postgresql/$pg/extension/"
done

# The server of the version the extensions were built against on this
# machine (an extension built against 15.20 does not load into 15.14), from
# the point release, its updates and security.
version=$(dpkg-query -W -f='${Version}' postgresql-$pg)

# No default cluster (the sandbox makes its own under /data), no docs or
# manuals; the user and group 65532 the image runs as (initdb needs a name
# for its user).
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0} mmdebstrap --variant=minbase --quiet \
	--include=postgresql-$pg=$version,postgresql-client-$pg=$version,postgresql-$pg-postgis-3,postgresql-$pg-rum,libpq5,libpcre2-8-0,ca-certificates \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--essential-hook='mkdir -p "$1/etc/postgresql-common/createcluster.d" && echo "create_main_cluster = false" > "$1/etc/postgresql-common/createcluster.d/pinreset.conf"' \
	--customize-hook="copy-in $ext/usr /" \
	--customize-hook='echo "nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin" >> "$1/etc/passwd" && echo "nonroot:x:65532:" >> "$1/etc/group"' \
	--customize-hook='rm -rf "$1/var/cache/apt/"* "$1/var/lib/apt/lists/"*' \
	bookworm "$work/rootfs.tar" "${sources[@]}"
"$podman" import --quiet "$work/rootfs.tar" "$image" >/dev/null
echo "sandbox-base: imported $image"
