# image-lib.sh: the parts of an initramfs build that build-guest (guest
# images) and labs/xen/build-lab (the Xen lab's Dom0) share. Sourced,
# not run. The caller defines log() and die() and sets BUSYBOX (a static
# busybox). Both builders hash this file into their image hashes.

# Shared libraries (and dynamic loader) a binary needs, one absolute path per
# line; "MISSING <soname>" for one ldd cannot find. Prints nothing for a
# static binary. LD_LIBRARY_PATH from the caller's environment applies.
ilib_shared_libs() {
  local out
  if ! out="$(ldd "$1" 2>/dev/null)"; then
    return 0 # "not a dynamic executable"
  fi
  awk '
    $2 == "=>" && $3 ~ /^\// { print $3; next }
    $1 ~ /^\// { print $1 }
    $2 == "=>" && $3 == "not" { print "MISSING " $1 }
  ' <<<"$out"
}

# A kernel module file (maybe compressed) -> its uncompressed bytes on stdout.
ilib_plain_ko() {
  case "$1" in
    *.ko) cat "$1" ;;
    *.ko.xz) xz -dc "$1" ;;
    *.ko.zst) zstd -qdc "$1" ;;
    *.ko.gz) gzip -dc "$1" ;;
  esac
}

# ilib_install_modules STAGE MODDIR RELEASE PACKAGE NAME...
# Copies the modules NAME... and what they depend on (each module's .modinfo
# depends=, dependencies first) from MODDIR (an unpacked
# /lib/modules/RELEASE) into STAGE/lib/modules/RELEASE, uncompressed (busybox
# insmod cannot read compressed modules), lists them in load order in
# vmlat-load-order there, and runs busybox depmod. Modules built into the
# kernel are skipped. Sets ILIB_MOD_ORDER and ILIB_BUILTIN_MODS.
ilib_install_modules() {
  local stage="$1" moddir="$2" release="$3" package="$4" f base name src rel
  shift 4
  declare -gA ilib_mod_file=() ilib_mod_state=()
  ILIB_MOD_ORDER=()
  ILIB_BUILTIN_MODS=()
  ilib_builtin_list="$moddir/modules.builtin"
  ilib_package="$package"
  ilib_release="$release"
  while IFS= read -r -d '' f; do
    base="${f##*/}"
    name="${base%%.ko*}"
    ilib_mod_file[${name//-/_}]="$f"
  done < <(find "$moddir" \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) -print0)
  for name in "$@"; do ilib_visit_mod "$name"; done

  local modrel="lib/modules/$release"
  mkdir -p "$stage/$modrel"
  : >"$stage/$modrel/vmlat-load-order"
  for name in "${ILIB_MOD_ORDER[@]}"; do
    src="${ilib_mod_file[$name]}"
    rel="${src#"$moddir"/}"
    rel="${rel%.ko*}.ko"
    mkdir -p "$stage/$modrel/$(dirname "$rel")"
    ilib_plain_ko "$src" >"$stage/$modrel/$rel"
    echo "$rel" >>"$stage/$modrel/vmlat-load-order"
  done
  for f in modules.builtin modules.builtin.modinfo modules.order; do
    [[ -f "$moddir/$f" ]] && cp "$moddir/$f" "$stage/$modrel/"
  done
  "$BUSYBOX" depmod -b "$stage" "$release" 2>/dev/null ||
    log "warning: busybox depmod failed; modprobe will not work in the image (insmod does)"
  return 0
}

ilib_mod_depends() {
  ilib_plain_ko "$1" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n1 | tr ',' ' '
}

ilib_is_builtin() {
  [[ -f "$ilib_builtin_list" ]] && grep -Eq "/${1}\.ko\$|/${1//_/-}\.ko\$" "$ilib_builtin_list"
}

ilib_visit_mod() {
  local name="${1//-/_}" dep
  case "${ilib_mod_state[$name]:-}" in
    done) return 0 ;;
    active) die "module dependency cycle at $name" ;;
  esac
  if [[ -z "${ilib_mod_file[$name]:-}" ]]; then
    if ilib_is_builtin "$name"; then
      ilib_mod_state[$name]="done"; ILIB_BUILTIN_MODS+=("$name"); return 0
    fi
    die "module $name is neither built into $ilib_release nor shipped in $ilib_package"
  fi
  ilib_mod_state[$name]=active
  for dep in $(ilib_mod_depends "${ilib_mod_file[$name]}"); do
    ilib_visit_mod "$dep"
  done
  ilib_mod_state[$name]="done"
  ILIB_MOD_ORDER+=("$name")
}

# ilib_skeleton STAGE: the directories, device nodes and busybox (with a
# link per applet) every image starts from.
ilib_skeleton() {
  local stage="$1" d applet
  for d in bin sbin usr/bin usr/sbin usr/libexec etc proc sys dev tmp run root var/tmp lib lib64; do
    mkdir -p "$stage/$d"
  done
  chmod 1777 "$stage/tmp" "$stage/var/tmp"
  if ! mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null; then
    log "note: cannot mknod /dev/console (not root?); /init reopens the console after mounting devtmpfs"
  fi
  mknod -m 666 "$stage/dev/null" c 1 3 2>/dev/null || true

  cp "$BUSYBOX" "$stage/bin/busybox"
  chmod 755 "$stage/bin/busybox"
  while read -r applet; do
    [[ -n "$applet" && "$applet" != bin/busybox ]] || continue
    [[ -e "$stage/$applet" || -L "$stage/$applet" ]] && continue
    mkdir -p "$stage/$(dirname "$applet")"
    ln -s /bin/busybox "$stage/$applet"
  done < <("$BUSYBOX" --list-full)
}

# ilib_cpio STAGE > FILE: a reproducible newc archive of STAGE, owned by root.
ilib_cpio() {
  (
    cd "$1"
    find . -mindepth 1 -print0 | LC_ALL=C sort -z |
      cpio --null -o -H newc -R 0:0 --reproducible --quiet
  )
}

# ilib_extract_vmlinux BZIMAGE OUT: the uncompressed kernel ELF inside a bzImage (the
# payload after its xz, zstd or gzip magic). Xen loads an ELF as it is, whereas a bzImage
# costs it (or libxc in Dom0) seconds of decompression under TCG.
ilib_extract_vmlinux() {
  local bz="$1" out="$2" off magic cmd
  for magic in xz zstd gzip; do
    case "$magic" in
      xz) off="$(LC_ALL=C grep -abo $'\xfd7zXZ' "$bz" | head -n1 | cut -d: -f1)"; cmd=(xz -dc --single-stream) ;;
      zstd) off="$(LC_ALL=C grep -abo $'\x28\xb5\x2f\xfd' "$bz" | head -n1 | cut -d: -f1)"; cmd=(zstd -qdc) ;;
      gzip) off="$(LC_ALL=C grep -abo $'\x1f\x8b\x08' "$bz" | head -n1 | cut -d: -f1)"; cmd=(gzip -dc) ;;
    esac
    [[ -n "$off" ]] || continue
    if tail -c +$((off + 1)) "$bz" | "${cmd[@]}" >"$out" 2>/dev/null || [[ -s "$out" ]]; then
      if [[ "$(head -c 4 "$out" | od -An -c | tr -d ' ')" == 177ELF ]]; then return 0; fi
    fi
  done
  rm -f "$out"
  die "no ELF kernel found inside $bz"
}
