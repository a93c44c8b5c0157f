"""A kernel sandbox for the forked child that runs a draft's code (Linux, stdlib + ctypes).

:func:`enter`, called in the child before the draft runs, puts it where the kernel, not
Python, refuses what the draft must not do, so ``ctypes`` or any other native route past
the audit hook of :mod:`.code_exec` meets the same walls:

* **its own user, mount and IPC namespaces** (``unshare``; the user's uid/gid mapped to
  themselves, ``setgroups`` denied);
* **a new root that holds only what the interpreter needs**, all of it read-only: a small
  tmpfs with ``/usr`` and ``/lib*`` (the shared libraries), the interpreter's stdlib and
  site-packages (wherever they are, ``$HOME`` included, only those directories),
  ``/etc/ld.so.cache`` and ``/etc/localtime``, and ``/dev/{null,zero,full,random,urandom}``.
  The old root is detached (``pivot_root``), so ``$HOME``, ``/root``, ``/home``, ``/tmp``,
  ``/work``, ``/run``, the ledger and the config, ``/proc`` and ``/sys`` are not there to
  be read at all: an allowlist, not a list of places to hide;
* **no capabilities** (the bounding set emptied, then ``capset`` to zero) and
  ``PR_SET_NO_NEW_PRIVS``: the draft cannot remount anything writable or undo a mount;
* **a seccomp filter** (a denylist): no sockets (so no network, abstract Unix sockets
  included), no new processes (``fork``/``vfork``/``clone`` without ``CLONE_THREAD``;
  threads still start), no signals to or tracing of other processes (``kill``, ``ptrace``,
  ``process_vm_*``, pidfds: the child runs as the user, so without this it could kill or
  read any of the user's processes), no keyrings, ``io_uring``, ``bpf``, ``perf_event_open``,
  ``userfaultfd``, no (un)mounting or new namespaces; any other architecture's syscalls kill
  the process.

Not done, and why: no network namespace (the seccomp filter already refuses every socket,
and a netns cost ~0.3 ms of the child's CPU plus ~0.4 ms of kernel worker time per draft to
create and tear down: measured, 500 forks, /tmp probe in the sandbox-1 session); no PID
namespace (it needs a second fork per draft; the filter already refuses every call that
names another process). What it does not protect: what the user's own files hold is out
of reach, but the bound system and Python directories are readable (``/usr``, the
site-packages), the kernel itself is the boundary (a kernel exploit is out of scope), and
a draft can still burn its CPU and memory allowance (the limits of :mod:`.code_exec`) or
lie about its own results on the pipe it reports on.

:func:`support` says once per process whether this kernel allows it (unprivileged user
namespaces can be disabled by sysctl, AppArmor or a container's seccomp profile), by
entering it in a throwaway child.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import struct
import sys
import sysconfig
from dataclasses import dataclass

__all__ = ["Support", "bind_sources", "enter", "execution_enabled", "note_once", "seal", "support"]

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_THREAD = 0x00010000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
MNT_DETACH = 2
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID = 0x1, 0x2
PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS = 22, 38
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO, SECCOMP_RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# Syscalls common to every architecture since Linux 5.x (one table): pidfd_send_signal,
# io_uring_setup/enter/register, open_tree, move_mount, fsopen, fsconfig, fsmount, fspick,
# pidfd_open, pidfd_getfd, mount_setattr; clone3 is answered ENOSYS so glibc falls back to
# clone, whose flags the filter can read (it cannot read clone3's struct).
_COMMON = (424, 425, 426, 427, 428, 429, 430, 431, 432, 433, 434, 438, 442)
_CLONE3 = 435
_SYS_MOUNT_SETATTR = 442


@dataclass(frozen=True)
class _Arch:
    audit: int  # AUDIT_ARCH_* the filter checks first
    pivot_root: int
    clone: int
    denied: tuple[int, ...]  # refused with EPERM
    x32: bool = False  # x86_64: refuse the x32 ABI's numbers too


_ARCHES = {
    # kill tkill tgkill rt_sigqueueinfo rt_tgsigqueueinfo ptrace process_vm_readv/writev
    # socket socketpair fork vfork kcmp bpf perf_event_open userfaultfd add_key request_key
    # keyctl mount umount2 pivot_root unshare setns chroot execve execveat
    "x86_64": _Arch(0xC000003E, 155, 56, (62, 200, 234, 129, 297, 101, 310, 311, 41, 53, 57, 58,
                                          312, 321, 298, 323, 248, 249, 250, 165, 166, 155, 272,
                                          308, 161, 59, 322), x32=True),
    # the same list (aarch64 has no fork/vfork syscalls)
    "aarch64": _Arch(0xC00000B7, 41, 220, (129, 130, 131, 138, 240, 117, 270, 271, 198, 199,
                                           272, 280, 241, 282, 217, 218, 219, 40, 39, 41, 97,
                                           268, 51, 221, 281)),
}  # fmt: skip


@dataclass(frozen=True)
class Support:
    """Whether this process can put its children in the kernel sandbox, and if not why."""

    available: bool
    reason: str = ""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


_TOP = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/dev/null", "/dev/zero", "/dev/full",
          "/dev/random", "/dev/urandom")  # fmt: skip


def _python_dirs() -> list[str]:
    """The interpreter's stdlib and site-packages: the sys.path entries inside one of its
    prefixes or named site-/dist-packages (not '' or a script's directory, which may be the
    user's), and sysconfig's own paths."""
    prefixes = {os.path.abspath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                              sys.base_exec_prefix)}  # fmt: skip
    found = []
    for entry in sys.path:
        if not entry or not os.path.isabs(entry):
            continue
        path = os.path.abspath(entry)
        inside = any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)
        if (inside and path not in prefixes) or os.path.basename(path) in ("site-packages", "dist-packages"):
            found.append(path)
    paths = sysconfig.get_paths()
    found.extend(paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths)
    return found


def bind_sources() -> tuple[list[str], list[tuple[str, str]]]:
    """(paths to bind read-only into the new root, (link, target) symlinks to recreate),
    outermost first, each only once (a path inside an earlier one is already there)."""
    links: list[tuple[str, str]] = []
    paths: list[str] = []
    for top in _TOP:
        if os.path.islink(top):
            links.append((top, os.readlink(top)))
        elif os.path.isdir(top):
            paths.append(top)
    paths.extend(p for p in _python_dirs() if os.path.exists(p))
    paths.extend(p for p in _FILES if os.path.exists(p))
    chosen: list[str] = []
    for path in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        if not any(path == c or path.startswith(c + "/") for c in chosen):
            chosen.append(path)
    return chosen, links


def _filter(arch: _Arch) -> bytes:
    """The seccomp BPF program: other architectures killed, the denylist refused with
    EPERM, clone3 with ENOSYS, clone only with CLONE_THREAD, everything else allowed."""
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, ...
    checks = [(jge, "eperm", 0x40000000)] if arch.x32 else []  # the x32 ABI's numbers
    checks += [(jeq, "eperm", nr) for nr in (*arch.denied, *_COMMON)]
    checks += [(jeq, "enosys", _CLONE3), (jeq, "clone", arch.clone)]
    n = len(checks)
    # after the checks: [n] allow, [n+1] EPERM, [n+2] ENOSYS, [n+3..] clone's flags
    at = {"eperm": n + 1, "enosys": n + 2, "clone": n + 3}
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch.audit), (ret, 0, 0, SECCOMP_RET_KILL_PROCESS), (ld, 0, 0, 0)]
    prog += [(op, at[to] - i - 1, 0, value) for i, (op, to, value) in enumerate(checks)]  # jt: relative
    prog += [
        (ret, 0, 0, SECCOMP_RET_ALLOW),
        (ret, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
        (ret, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),
        (ld, 0, 0, 16),  # clone: args[0], its low 32 bits (little-endian)
        (jset, 1, 0, CLONE_THREAD),  # a thread: allowed
        (ret, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),  # a process: refused
        (ret, 0, 0, SECCOMP_RET_ALLOW),
    ]
    return b"".join(struct.pack("=HBBI", *ins) for ins in prog)


class _FProg(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


@dataclass(frozen=True)
class _Prepared:
    """Everything :func:`enter` needs, made once in the parent, so each child only makes
    the system calls (loading libc and building the filter in the child cost ~0.35 ms)."""

    libc: ctypes.CDLL
    arch: _Arch
    paths: tuple[str, ...]
    links: tuple[tuple[str, str], ...]
    code: ctypes.Array[ctypes.c_char]  # the filter's instructions (kept alive for prog)
    prog: _FProg
    attr: ctypes.Array[ctypes.c_char]  # struct mount_attr: read-only, nosuid
    dirs: tuple[str, ...]  # to make in the new root, parents first
    dir_set: frozenset[str]  # the bound paths that are directories (the rest are files)
    cap_header: ctypes.Array[ctypes.c_uint32]
    cap_data: ctypes.Array[ctypes.c_uint32]  # effective, permitted, inheritable x 2: empty


@functools.lru_cache(maxsize=1)
def _prepared() -> _Prepared:
    arch = _ARCHES[os.uname().machine]
    paths, links = bind_sources()
    raw = _filter(arch)
    code = ctypes.create_string_buffer(raw, len(raw))
    attr = struct.pack("=QQQQ", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    is_dir = frozenset(p for p in paths if os.path.isdir(p))
    dirs: list[str] = []
    for path in paths:
        parts = path.strip("/").split("/")
        upto = len(parts) if path in is_dir else len(parts) - 1
        for i in range(1, upto + 1):
            d = "/" + "/".join(parts[:i])
            if d not in dirs:
                dirs.append(d)
    return _Prepared(
        _libc(), arch, tuple(paths), tuple(links), code, _FProg(len(raw) // 8, ctypes.addressof(code)),
        ctypes.create_string_buffer(attr, len(attr)), tuple(dirs), is_dir,
        (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0), (ctypes.c_uint32 * 6)(),
    )  # fmt: skip


def _mount(libc: ctypes.CDLL, src: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:  # fmt: skip
    def enc(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    _check(libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")  # fmt: skip


def _new_root(p: _Prepared) -> None:
    """Build the read-only root on a tmpfs over /tmp and pivot into it."""
    libc = p.libc
    # opened before the tmpfs covers /tmp (a venv may live there); bound through /proc
    fds = []
    for path in p.paths:
        try:
            fds.append((path, os.open(path, os.O_PATH | os.O_CLOEXEC)))
        except OSError:  # unreadable to this user: the draft could not read it anyway
            continue
    root = "/tmp"
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    _mount(libc, "tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=256k,nr_inodes=4096,mode=0755")
    for d in p.dirs:
        os.mkdir(root + d, 0o755)
    for path, fd in fds:
        if path not in p.dir_set:
            os.close(os.open(root + path, os.O_CREAT | os.O_WRONLY, 0o644))
        _mount(libc, f"/proc/self/fd/{fd}", root + path, None, MS_BIND | MS_REC)
        os.close(fd)
    for link, to in p.links:
        os.symlink(to, root + link)
    # read-only and nosuid, every mount under the new root at once (Linux >= 5.12)
    _check(libc.syscall(_SYS_MOUNT_SETATTR, AT_FDCWD, root.encode(), AT_RECURSIVE, p.attr, len(p.attr)),
           "mount_setattr")  # fmt: skip
    os.chdir(root)
    _check(libc.syscall(p.arch.pivot_root, b".", b"."), "pivot_root")
    _check(libc.umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")


def enter(*, sealed: bool = True) -> None:
    """In a freshly forked, single-threaded child: enter the sandbox or raise OSError (the
    caller must then not run the draft, or fall back knowingly). ``sealed=False``: all but
    the seccomp filter, for the fork server (:mod:`.fork_server`), whose children each
    :func:`seal` themselves before running a draft."""
    if sys.platform != "linux" or os.uname().machine not in _ARCHES:
        raise OSError(errno.ENOSYS, f"no kernel sandbox on {sys.platform}/{os.uname().machine}")
    p = _prepared()
    libc = p.libc
    uid, gid = os.getuid(), os.getgid()
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _new_root(p)
    # no capabilities left in the new user namespace (no remounting, no unmounting), and
    # none to regain: execve is refused by the filter, no_new_privs for what it misses
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(libc.capset(p.cap_header, p.cap_data), "capset")
    if sealed:
        seal()


def seal() -> None:
    """Install the seccomp filter (after :func:`enter`; it cannot be lifted)."""
    p = _prepared()
    _check(p.libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(p.prog), 0, 0), "seccomp")


def _probe() -> Support:
    if sys.platform != "linux" or os.uname().machine not in _ARCHES or not hasattr(os, "fork"):
        return Support(False, f"no kernel sandbox for {sys.platform}/{os.uname().machine} "
                              "(Linux x86_64/aarch64 only)")  # fmt: skip
    _prepared()  # made here, once, so every child inherits it (the same for every user)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        message = b"ok"
        try:
            os.close(rfd)
            enter()
        except BaseException as exc:
            message = str(exc).encode(errors="replace")[:300] or b"failed"
        finally:
            os.write(wfd, message)
            os._exit(0)
    os.close(wfd)
    try:
        answer = b""
        while chunk := os.read(rfd, 512):
            answer += chunk
    finally:
        os.close(rfd)
        os.waitpid(pid, 0)
    if answer == b"ok":
        return Support(True)
    text = answer.decode(errors="replace") or "the probe child died"
    if "unshare: Invalid argument" in text:  # our forks are threaded: see fork_server.start_fresh
        from .fork_server import start_fresh

        if start_fresh() is not None:
            return Support(True)
    for key, why in _WHY.items():
        if key in text:
            return Support(False, f"{why} ({text})")
    return Support(False, text)


_WHY = {
    "unshare: No space left": "user namespaces are disabled here (sysctl user.max_user_namespaces = 0)",
    "unshare: Operation not permitted": "unprivileged user namespaces are not allowed here (sysctl "
    "kernel.unprivileged_userns_clone, AppArmor's apparmor_restrict_unprivileged_userns, or a container's "
    "seccomp profile)",
    "uid_map": "user namespaces are restricted here (AppArmor or a security module refused the uid map)",
    "mount_setattr: Function not implemented": "the kernel is older than Linux 5.12 (no mount_setattr)",
}


@functools.lru_cache(maxsize=1)
def support() -> Support:
    """Whether children of this process can enter the sandbox (probed once, in a child;
    ``support.cache_clear()`` probes again, e.g. after a setuid)."""
    return _probe()


def execution_enabled(setting: bool | None) -> bool:
    """``[quality] execute_code`` / ``--execute-code``: as set; unset, on exactly where the
    kernel sandbox is available (probed once, ~3-25 ms)."""
    return setting if setting is not None else support().available


_noted = False


def note_once() -> str | None:
    """The one line to tell the user, once per process, when drafts' code runs without the
    kernel sandbox (only where execution was asked for explicitly)."""
    global _noted
    found = support()
    if _noted or found.available:
        return None
    _noted = True
    return (f"note: no kernel sandbox for drafts' code here ({found.reason}): it runs with process "
            "limits and Python-level guards only")
