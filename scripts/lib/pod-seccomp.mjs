// Test data for the simulated pod (test/pod/): the seccomp profile a pod runs under. Uses the
// shared copy of Docker's default profile (/work/shared/conformance/pod/docker-default-seccomp.json,
// i.e. ../shared/conformance/pod/ next to the repository) when it is there; otherwise generates a
// profile with the same semantics for what matters to a builder. The generated one is written as
// a deny list (default allow) rather than Docker's 349-name allow list, and denies what Docker's
// profile allows only with capabilities a pod does not have: mount, umount, unshare, setns, the
// new mount API, pivot_root, clone with any namespace flag, clone3 (ENOSYS, so libc falls back to
// clone), keyring calls, bpf, perf_event_open, module and reboot calls, the clock and the
// accounting calls (each only `excludes` the capability that would allow it, as Docker's
// `includes` do), chroot without CAP_SYS_CHROOT, ptrace below kernel 4.8 never matters here.
//
//   import { podSeccompProfile } from "./pod-seccomp.mjs";
//   const { json, source } = podSeccompProfile({ ptrace: false });   // source: "shared" | "generated"
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../..", import.meta.url));

/**
 * The shared Docker profile: $KILN_POD_SECCOMP, else shared/conformance/pod/docker-default-seccomp.json
 * in the repository's parent directory (../shared) or, for a git worktree, one of its ancestors; null when absent.
 */
export function sharedProfilePath() {
  if (process.env.KILN_POD_SECCOMP) return process.env.KILN_POD_SECCOMP;
  for (let d = dirname(REPO); ; d = dirname(d)) {
    const p = join(d, "shared", "conformance", "pod", "docker-default-seccomp.json");
    if (existsSync(p)) return p;
    if (dirname(d) === d) return null;
  }
}

const EPERM = 1;
const ENOSYS = 38;

// clone(2) flags that make a namespace (Docker's profile allows clone only with none of them set)
const CLONE_NS_FLAGS = {
  CLONE_NEWNS: 0x00020000,
  CLONE_NEWCGROUP: 0x02000000,
  CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000,
  CLONE_NEWUSER: 0x10000000,
  CLONE_NEWPID: 0x20000000,
  CLONE_NEWNET: 0x40000000,
};

// syscalls Docker's default profile allows only with the capability named (the rest of its list
// is allowed to everybody)
const NEEDS_CAP = {
  CAP_SYS_ADMIN: ["bpf", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie", "mount", "mount_setattr", "move_mount",
    "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare", "pivot_root"],
  CAP_SYS_BOOT: ["reboot", "kexec_load", "kexec_file_load"],
  CAP_SYS_CHROOT: ["chroot"],
  CAP_SYS_MODULE: ["delete_module", "init_module", "finit_module"],
  CAP_SYS_PACCT: ["acct"],
  CAP_SYS_PTRACE: ["kcmp", "pidfd_getfd", "process_madvise"],
  CAP_SYS_RAWIO: ["iopl", "ioperm"],
  CAP_SYS_TIME: ["settimeofday", "stime", "clock_settime", "clock_settime64"],
  CAP_SYS_TTY_CONFIG: ["vhangup"],
  CAP_SYS_NICE: ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
  CAP_DAC_READ_SEARCH: ["open_by_handle_at"],
};
// never allowed by Docker's profile, whatever the capabilities
const NEVER = ["add_key", "keyctl", "request_key", "swapon", "swapoff", "userfaultfd", "nfsservctl", "uselib", "create_module", "get_kernel_syms", "query_module"];

/** Docker-default semantics as a deny list (see the header). */
export function generatedProfile({ ptrace = true } = {}) {
  const deny = (names, extra = {}) => ({ names, action: "SCMP_ACT_ERRNO", errnoRet: EPERM, ...extra });
  const syscalls = [deny(NEVER)];
  for (const [cap, names] of Object.entries(NEEDS_CAP)) syscalls.push(deny(names, { excludes: { caps: [cap] } }));
  for (const flag of Object.values(CLONE_NS_FLAGS)) {
    syscalls.push(deny(["clone"], { args: [{ index: 0, value: flag, valueTwo: flag, op: "SCMP_CMP_MASKED_EQ" }], excludes: { caps: ["CAP_SYS_ADMIN"] } }));
  }
  syscalls.push({ names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS, excludes: { caps: ["CAP_SYS_ADMIN"] } });
  if (!ptrace) syscalls.push(deny(["ptrace", "process_vm_readv", "process_vm_writev"]));
  return {
    defaultAction: "SCMP_ACT_ALLOW",
    archMap: [{ architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"] }],
    syscalls,
  };
}

/** The shared Docker profile, with ptrace (and process_vm_*) taken out of every allow rule when `ptrace` is false. */
function sharedProfile(path, ptrace) {
  const p = JSON.parse(readFileSync(path, "utf8"));
  if (ptrace) return p;
  const gone = new Set(["ptrace", "process_vm_readv", "process_vm_writev"]);
  p.syscalls = p.syscalls
    .map((s) => (s.action === "SCMP_ACT_ALLOW" ? { ...s, names: s.names.filter((n) => !gone.has(n)) } : s))
    .filter((s) => s.names.length > 0);
  return p;
}

/**
 * The pod's profile as JSON text: Docker's default (shared copy, else generated), without ptrace
 * when `ptrace` is false. `prefer: "generated"` ignores the shared copy.
 */
export function podSeccompProfile({ ptrace = true, prefer = "shared" } = {}) {
  const shared = prefer === "shared" ? sharedProfilePath() : null;
  const profile = shared ? sharedProfile(shared, ptrace) : generatedProfile({ ptrace });
  return { json: `${JSON.stringify(profile, null, 1)}\n`, source: shared ? "shared" : "generated", path: shared };
}
