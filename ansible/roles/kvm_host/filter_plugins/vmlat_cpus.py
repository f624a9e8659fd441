# CPU lists in the kernel's format ("0-3,8"), as the kvm_host role's
# templates and checks need them. The role validates the text first; these
# filters raise an error that names the value for anything else.
from ansible.errors import AnsibleFilterError

DOCUMENTATION = """
name: vmlat_cpu_list
short_description: expand a kernel CPU list ("0-3,8") into sorted CPU numbers
"""


def vmlat_cpu_list(text, name="CPU list"):
    text = str(text).strip()
    cpus = set()
    if not text:
        return []
    for part in text.split(","):
        first, sep, last = part.partition("-")
        if not first.isdigit() or (sep and not last.isdigit()):
            raise AnsibleFilterError("%s %r: %r is not a CPU number or range" % (name, text, part))
        lo, hi = int(first), int(last) if sep else int(first)
        if hi < lo:
            raise AnsibleFilterError("%s %r: range %r runs backwards" % (name, text, part))
        if hi >= 4096:
            raise AnsibleFilterError("%s %r: CPU %d is beyond 4095" % (name, text, hi))
        cpus.update(range(lo, hi + 1))
    return sorted(cpus)


def vmlat_cpu_list_format(cpus):
    """Sorted CPU numbers back into the kernel's compact format."""
    out = []
    numbers = sorted(set(int(c) for c in cpus))
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(str(numbers[i]) if i == j else "%d-%d" % (numbers[i], numbers[j]))
        i = j + 1
    return ",".join(out)


class FilterModule(object):
    def filters(self):
        return {"vmlat_cpu_list": vmlat_cpu_list, "vmlat_cpu_list_format": vmlat_cpu_list_format}
