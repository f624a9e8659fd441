# GRUB menu entry ids, for making a kernel GRUB's default entry by id (the
# same whatever GRUB's language or theme), as the kvm_host role does for the
# PREEMPT_RT kernel.
import re

DOCUMENTATION = """
name: vmlat_grub_default
short_description: the GRUB_DEFAULT value that boots a kernel release, from grub.cfg's text
"""

ENTRY_ID = r"[A-Za-z0-9._+~-]+"


def vmlat_grub_default(grub_cfg, release):
    """GRUB_DEFAULT for Debian's 10_linux entry of `release`: "<submenu id>><entry id>"
    when the entry is in the "Advanced options" submenu, "<entry id>" when it is at
    the top (GRUB_DISABLE_SUBMENU=y), "" when grub.cfg has no such entry."""
    text = str(grub_cfg)
    entry_re = re.compile(r"^\s*menuentry\s.*\$menuentry_id_option\s+'(gnulinux-%s-advanced-%s)'"
                          % (re.escape(str(release)), ENTRY_ID))
    submenu_re = re.compile(r"^\s*submenu\s.*\$menuentry_id_option\s+'(gnulinux-advanced-%s)'" % ENTRY_ID)
    submenu = None
    depth = 0
    submenu_depth = None
    for line in text.splitlines():
        m = submenu_re.match(line)
        if m:
            submenu, submenu_depth = m.group(1), depth
        m = entry_re.match(line)
        if m:
            return ("%s>%s" % (submenu, m.group(1))) if submenu_depth is not None else m.group(1)
        depth += line.count("{") - line.count("}")
        if submenu_depth is not None and depth <= submenu_depth:
            submenu, submenu_depth = None, None
    return ""


class FilterModule(object):
    def filters(self):
        return {"vmlat_grub_default": vmlat_grub_default}
