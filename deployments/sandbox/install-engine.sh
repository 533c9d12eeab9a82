#!/usr/bin/env bash
# Installs the sandbox's and the tests' database engine on Debian 12:
# PostgreSQL 15 with the three extensions FerretDB v2 needs (DocumentDB,
# pg_cron, pgvector), built from the sources in
# third_party/postgres-extensions after their SHA-256 digests are checked.
# FerretDB itself is a Go module, linked into cmd/sandbox.
#
# Idempotent and cheap when done: it returns at once when the stamp it leaves
# in PostgreSQL's extension directory holds the digests of the sources it
# would build and the libraries are in place. Not root: apt-get and the
# install steps go through sudo. Not Debian: it stops with a hint
# (PINRESET_MONGO_URI; README, Tests).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
src=$root/third_party/postgres-extensions
pg=15
pgbin=/usr/lib/postgresql/$pg/bin
pg_config=$pgbin/pg_config
stamp=/usr/share/postgresql/$pg/extension/pinreset-engine.sha256sums
libs=(pg_documentdb pg_documentdb_core pg_cron vector)
packages=(postgresql-$pg postgresql-server-dev-$pg libbson-dev libpcre2-dev libintelrdfpmath-dev
	libkrb5-dev postgresql-$pg-postgis-3 postgresql-$pg-rum pkg-config build-essential)

installed() {
	[ -x "$pgbin/postgres" ] && [ -f "$stamp" ] && cmp -s "$stamp" "$src/SHA256SUMS" || return 1
	for l in "${libs[@]}"; do
		[ -f "/usr/lib/postgresql/$pg/lib/$l.so" ] || return 1
	done
}
if installed; then
	exit 0
fi

if ! command -v apt-get >/dev/null; then
	echo "install-engine: not a Debian machine; install PostgreSQL $pg with DocumentDB by hand," >&2
	echo "or point PINRESET_MONGO_URI at a MongoDB 6+ (README, Tests)" >&2
	exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
	sudo=(sudo)
fi

start=$(date +%s)
echo "install-engine: PostgreSQL $pg and the DocumentDB extensions (once; about 3 minutes)"
# The digests first: nothing unverified is unpacked or built.
(cd "$src" && sha256sum --check --quiet --strict SHA256SUMS)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "install-engine: apt-get install ${missing[*]}"
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
while read -r _ tarball; do
	tar -xzf "$src/$tarball" -C "$work"
done <"$src/SHA256SUMS"

# DocumentDB finds the Intel decimal library by pkg-config as intelmathlib;
# Debian ships the library (static, PIC) but no .pc file for it.
mkdir "$work/pkgconfig"
cat >"$work/pkgconfig/intelmathlib.pc" <<'EOF'
Name: intelmathlib
Description: Intel Decimal Floating-Point Math Library (Debian libintelrdfpmath-dev)
Version: 2.0
Cflags: -I/usr/include
Libs: -l:libbidgcc000.a
EOF
export PKG_CONFIG_PATH=$work/pkgconfig

# with_llvm=no: no JIT bitcode, half the build time.
jobs=-j$(nproc)
pgxs=(PG_CONFIG="$pg_config" with_llvm=no)
make -s -C "$work/pgvector" "$jobs" "${pgxs[@]}" OPTFLAGS=""
"${sudo[@]}" make -s -C "$work/pgvector" "${pgxs[@]}" OPTFLAGS="" install
make -s -C "$work/pg_cron" "$jobs" "${pgxs[@]}" USE_PGXS=1
"${sudo[@]}" make -s -C "$work/pg_cron" "${pgxs[@]}" USE_PGXS=1 install
# Only the two single-node extensions, not the distributed variant the
# top-level Makefile also builds. Debian's libbson 1.23 predates
# BSON_SUBTYPE_SENSITIVE.
make -s -C "$work/documentdb/pg_documentdb_core" "$jobs" "${pgxs[@]}"
"${sudo[@]}" make -s -C "$work/documentdb/pg_documentdb_core" "${pgxs[@]}" install
docdb=(COPT='-DBSON_SUBTYPE_SENSITIVE=0x08 -Wno-error=switch')
make -s -C "$work/documentdb/pg_documentdb" "$jobs" "${pgxs[@]}" "${docdb[@]}"
"${sudo[@]}" make -s -C "$work/documentdb/pg_documentdb" "${pgxs[@]}" "${docdb[@]}" install

"${sudo[@]}" cp "$src/SHA256SUMS" "$stamp"
echo "install-engine: done in $(($(date +%s) - start)) s"
