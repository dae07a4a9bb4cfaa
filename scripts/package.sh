#!/usr/bin/env bash
# Builds the .deb (cargo-deb) and the .rpm (cargo-generate-rpm) into target/packages/,
# installing both tools with `cargo install --locked` on first use. What goes in is declared in
# Cargo.toml ([package.metadata.deb], [package.metadata.generate-rpm]); this script only makes
# the files generated for them: the man pages and completions (from the built binary) and the
# packaged config (config.ini.sample with every plugin disabled).
#
#   scripts/package.sh                 build both packages
#   scripts/package.sh --check         build them, then test what they install (paths, modes,
#                                      conffile, service enabled but not started, the extracted
#                                      binary runs and accepts the packaged config)
#   scripts/package.sh --config FILE   only write the packaged config to FILE
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/packages
version=$(awk -F'"' '/^version *=/ { print $2; exit }' Cargo.toml)

die() {
    echo "package.sh: $*" >&2
    exit 1
}

# config.ini.sample as a fresh install's /etc/emstail/config.ini: every plugin disabled (the
# operator enables what they need; `emstail check` says until then that it would do nothing)
# and the Service paths of a real EMS host instead of the repository's fixtures. Every
# replacement must hit exactly as often as expected, so a changed sample fails here loudly.
packaged_config() {
    local dest=$1 sample=config.ini.sample
    local plugins
    plugins=$(grep -c '"plugin_switch": "enabled"' "$sample" || true)
    [ "$plugins" -ge 1 ] || die "$sample: no \"plugin_switch\": \"enabled\" line to switch off"
    local -a replace=(
        '"event_log": "fixtures/logs/events_\*.txt"|"event_log": "/var/evostreamms/logs/events*.txt"'
        '"state_dir": "target/emstail-state"|"state_dir": "/var/lib/emstail"'
        '"media_root": \["fixtures/ems/evo-webroot"\]|"media_root": ["/var/evostreamms"]'
        '"ems_working_dir": "fixtures/ems/bin",|// "ems_working_dir": "/path/of/ems/bin",'
    )
    local text pair from to
    text=$(cat "$sample")
    for pair in "${replace[@]}"; do
        from=${pair%%|*}
        to=${pair#*|}
        [ "$(grep -c -- "$from" <<<"$text")" -eq 1 ] || die "$sample: expected one line matching $from"
        text=$(sed "s#$from#$to#" <<<"$text")
    done
    # The sample's own header describes the demo it is set up for.
    [ "$(grep -c -e 'This sample enables all' -e 'run from the repository root\.' <<<"$text")" -eq 2 ] ||
        die "$sample: its header no longer says 'This sample enables all … run from the repository root.'"
    text=$(sed -e '/This sample enables all/,/run from the repository root\./d' \
        -e 's/"plugin_switch": "enabled"/"plugin_switch": "disabled"/' <<<"$text")
    [ "$(grep -c '"plugin_switch": "disabled"' <<<"$text")" -eq "$plugins" ] ||
        die "$sample: not every plugin could be disabled"
    mkdir -p "$(dirname "$dest")"
    {
        cat <<'EOF'
/*
 * Installed by the emstail package. Every plugin below is disabled: enable the ones you need
 * ("plugin_switch": "enabled") and fill in their parameters, then
 *   emstail check && systemctl start emstail
 * The service (enabled, not started until you start it) reads this file; it is kept, edited,
 * across upgrades. Paths here should be absolute.
 */
EOF
        printf '%s\n' "$text"
    } >"$dest.tmp"
    chmod 600 "$dest.tmp"
    mv "$dest.tmp" "$dest"
}

ensure_tool() {
    local tool=$1
    if ! cargo "${tool#cargo-}" --version >/dev/null 2>&1; then
        echo "package.sh: installing $tool (once; it takes a few minutes)" >&2
        cargo install --locked "$tool"
    fi
}

# The binary, and what is generated from it and from the sample into target/packages/.
generate() {
    cargo build --release --locked
    local bin=target/release/emstail sub
    rm -rf "$out"
    mkdir -p "$out/man" "$out/completions"
    "$bin" man >"$out/man/emstail.1"
    # Every subcommand clap lists, but `help`.
    for sub in $("$bin" --help | awk '/^Commands:/ { on = 1; next } /^$/ { on = 0 } on && $1 != "help" { print $1 }'); do
        "$bin" man "$sub" >"$out/man/emstail-$sub.1"
    done
    gzip -9n "$out"/man/*.1
    "$bin" completions bash >"$out/completions/emstail.bash"
    "$bin" completions zsh >"$out/completions/_emstail"
    "$bin" completions fish >"$out/completions/emstail.fish"
    packaged_config "$out/config.ini"
}

build() {
    ensure_tool cargo-deb
    ensure_tool cargo-generate-rpm
    generate
    cargo deb --no-build --locked --output "$out/"
    cargo generate-rpm --output "$out/"
    ls -l "$out"/*.deb "$out"/*.rpm
}

# ---------------------------------------------------------------------------------------
# --check: what the packages install, asserted.

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
pass() { echo "ok: $*"; }

# The man pages and completions both packages hold.
subcommands=(check parse replay run status rules dead-letters completions man)
common_files() {
    local mode644=-rw-r--r-- sub
    echo "-rwxr-xr-x /usr/bin/emstail"
    echo "-rw------- /etc/emstail/config.ini"
    echo "$mode644 /usr/share/man/man1/emstail.1.gz"
    for sub in "${subcommands[@]}"; do echo "$mode644 /usr/share/man/man1/emstail-$sub.1.gz"; done
    echo "$mode644 /usr/share/bash-completion/completions/emstail"
    echo "$mode644 /usr/share/fish/vendor_completions.d/emstail.fish"
    echo "$mode644 /usr/share/doc/emstail/README.md"
    echo "$mode644 /usr/share/doc/emstail/LICENSE"
}

# expect_files LISTING: LISTING has lines "MODE /path"; every expected one must be there.
expect_files() {
    local listing=$1 what=$2 line
    while read -r line; do
        if grep -qxF -- "$line" <<<"$listing"; then
            pass "$what: $line"
        else
            fail "$what: no $line in:"$'\n'"$listing"
        fi
    done
}

# The extracted tree runs: --version, check on the packaged config, man pages render,
# the bash completion offers the subcommands, and the unit verifies.
check_tree() {
    local root=$1 what=$2 unit=$3 out_v err rc page sub
    out_v=$("$root/usr/bin/emstail" --version) || fail "$what: emstail --version failed"
    [ "$out_v" = "emstail $version" ] && pass "$what: --version says $out_v" ||
        fail "$what: --version says '$out_v', expected 'emstail $version'"

    rc=0
    err=$("$root/usr/bin/emstail" check --config "$root/etc/emstail/config.ini" 2>&1 >/dev/null) || rc=$?
    [ "$rc" -eq 0 ] && pass "$what: check on the packaged config exits 0" ||
        fail "$what: check on the packaged config exits $rc: $err"
    grep -q "would do nothing" <<<"$err" && pass "$what: check warns that emstail would do nothing" ||
        fail "$what: check does not warn 'would do nothing': $err"

    for page in "$root"/usr/share/man/man1/*.1.gz; do
        err=$(zcat "$page" | groff -man -Tutf8 -ww 2>&1 >/dev/null) || fail "$what: groff failed on $page"
        [ -z "$err" ] || fail "$what: $page renders with warnings: $err"
    done
    pass "$what: every man page renders without warnings"

    # shellcheck disable=SC2016
    local offered
    offered=$(bash -c '. "$1"; COMP_WORDS=(emstail ""); COMP_CWORD=1; COMP_LINE="emstail "; COMP_POINT=8
        _emstail emstail "" emstail; printf "%s\n" "${COMPREPLY[@]}"' _ "$root/usr/share/bash-completion/completions/emstail")
    for sub in "${subcommands[@]}"; do
        grep -qxF "$sub" <<<"$offered" || fail "$what: bash completion does not offer $sub"
    done
    pass "$what: bash completion offers every subcommand"

    grep -qxF "ExecStart=/usr/bin/emstail run --config %d/config.ini --state-dir /var/lib/emstail" "$root$unit" &&
        grep -qxF "LoadCredential=config.ini:/etc/emstail/config.ini" "$root$unit" &&
        pass "$what: the unit runs /usr/bin/emstail on /etc/emstail/config.ini" ||
        fail "$what: the unit does not run /usr/bin/emstail on /etc/emstail/config.ini"
    if command -v systemd-analyze >/dev/null; then
        # The extracted package is not installed: the copy verified runs the extracted binary
        # (verify checks that it exists), and man finds the extracted emstail(1) (verify
        # checks Documentation=). Any message (an unknown key, say) is a failure too.
        mkdir -p "$root.verify"
        sed "s#^ExecStart=/usr/bin/emstail #ExecStart=$root/usr/bin/emstail #" "$root$unit" >"$root.verify/emstail.service"
        rc=0
        err=$(MANPATH="$root/usr/share/man" systemd-analyze verify "$root.verify/emstail.service" 2>&1) || rc=$?
        [ "$rc" -eq 0 ] && [ -z "$err" ] && pass "$what: systemd-analyze verify $unit" ||
            fail "$what: systemd-analyze verify $unit (exit $rc): $err"
        rm -rf "$root.verify"
    else
        echo "note: no systemd-analyze here: the unit is not verified" >&2
    fi
}

check_deb() {
    local deb tmp listing unit=/usr/lib/systemd/system/emstail.service
    deb=$(ls "$out"/emstail_"$version"-*.deb) || die "no .deb in $out"
    tmp=$(mktemp -d)
    # dpkg-deb -c: "MODE OWNER SIZE DATE TIME ./PATH"
    listing=$(dpkg-deb -c "$deb" | awk '{ sub(/^\./, "", $6); print $1, $6 }')
    {
        common_files
        echo "-rw-r--r-- $unit"
        echo "-rw-r--r-- /usr/share/zsh/vendor-completions/_emstail"
    } | expect_files "$listing" deb

    dpkg-deb -e "$deb" "$tmp/DEBIAN"
    grep -qxF /etc/emstail/config.ini "$tmp/DEBIAN/conffiles" && pass "deb: config.ini is a conffile" ||
        fail "deb: config.ini is not a conffile"
    grep -Eq "deb-systemd-helper enable '?emstail\.service'?" "$tmp/DEBIAN/postinst" &&
        pass "deb: postinst enables emstail.service" || fail "deb: postinst does not enable the service"
    if grep -Eq "deb-systemd-invoke (start|restart) " "$tmp/DEBIAN/postinst" ||
        grep -q '_dh_action=.*start' "$tmp/DEBIAN/postinst"; then
        fail "deb: postinst starts the service:"$'\n'"$(cat "$tmp/DEBIAN/postinst")"
    else
        pass "deb: postinst does not start the service"
    fi

    dpkg-deb -x "$deb" "$tmp/root"
    check_tree "$tmp/root" deb "$unit"
    rm -rf "$tmp"
}

check_rpm() {
    if ! command -v rpm >/dev/null || ! command -v cpio >/dev/null; then
        if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
            apt-get update -qq && apt-get install -y -qq rpm cpio >/dev/null
        fi
    fi
    if ! command -v rpm >/dev/null || ! command -v cpio >/dev/null; then
        echo "note: rpm is not installable here: the .rpm is not checked" >&2
        return
    fi
    local rpmfile tmp listing flags unit=/usr/lib/systemd/system/emstail.service
    rpmfile=$(ls "$out"/emstail-"$version"-*.rpm) || die "no .rpm in $out"
    tmp=$(mktemp -d)
    rpm -qlp "$rpmfile" | grep -qxF /usr/bin/emstail || fail "rpm: rpm -qlp does not list /usr/bin/emstail"
    listing=$(rpm -qp --queryformat '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpmfile")
    {
        common_files
        echo "-rw-r--r-- $unit"
        echo "-rw-r--r-- /usr/share/zsh/site-functions/_emstail"
    } | expect_files "$listing" rpm

    flags=$(rpm -qp --queryformat '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpmfile" | awk '$2 == "/etc/emstail/config.ini" { print $1 }')
    [ "$flags" = cn ] && pass "rpm: config.ini is %config(noreplace)" ||
        fail "rpm: config.ini has file flags '$flags', expected cn (%config(noreplace))"
    local scripts
    scripts=$(rpm -qp --scripts "$rpmfile")
    grep -q "systemctl enable emstail.service" <<<"$scripts" && pass "rpm: %post enables emstail.service" ||
        fail "rpm: %post does not enable the service"
    if grep -Eq "systemctl (start|restart|enable --now)" <<<"$scripts"; then
        fail "rpm: a scriptlet starts the service:"$'\n'"$scripts"
    else
        pass "rpm: no scriptlet starts the service"
    fi

    mkdir -p "$tmp/root"
    # Debian's rpm2cpio exits 1 after writing the whole archive; what cpio extracts is checked
    # below, file by file.
    (cd "$tmp/root" && { rpm2cpio "$OLDPWD/$rpmfile" || true; } | cpio -idm --quiet)
    check_tree "$tmp/root" rpm "$unit"
    rm -rf "$tmp"
}

case "${1:-}" in
"")
    build
    ;;
--check)
    build
    check_deb
    check_rpm
    if [ "$failures" -ne 0 ]; then
        echo "package check: $failures failed" >&2
        exit 1
    fi
    echo "package check: all passed"
    ;;
--config)
    [ $# -eq 2 ] || die "usage: $0 --config FILE"
    packaged_config "$2"
    ;;
*)
    die "usage: $0 [--check | --config FILE]"
    ;;
esac
