// The host requirements table: every program or kernel feature kiln may use, what it is for,
// whether builds need it, and the package that provides it on Debian/Ubuntu, Fedora and Alpine.
// `kiln doctor` checks each row on this host; the README's Requirements section is rendered from
// the same rows (requirementsMarkdown), and a test keeps the two equal.

export type RequirementId =
  | "oci-runtime" | "util-linux" | "coreutils" | "busybox" | "proot" | "fakeroot" | "overlayfs" | "scratch-fs"
  | "xattr-tools" | "uidmap" | "zstd" | "qemu" | "tini" | "git" | "ssh";

export interface Packages {
  debian: string;
  fedora: string;
  alpine: string;
}

export interface Requirement {
  id: RequirementId;
  /** Short name shown by doctor. */
  name: string;
  /** What kiln uses it for (one phrase). */
  usedFor: string;
  /** "run": one of the RUN isolation modes needs it; "optional": a feature or speed-up needs it. */
  need: "run" | "optional";
  /** Commands looked up on PATH (any one present satisfies the row's tool part). */
  commands: string[];
  packages: Packages;
}

export const REQUIREMENTS: readonly Requirement[] = [
  { id: "oci-runtime", name: "OCI runtime", usedFor: "`--isolation oci` (crun preferred, runc where crun refuses the cgroup layout)", need: "run", commands: ["crun", "runc"], packages: { debian: "crun runc", fedora: "crun runc", alpine: "crun runc" } },
  { id: "util-linux", name: "util-linux", usedFor: "`--isolation chroot` (unshare), every RUN's tie to kiln's life and chroot's capability drop (setpriv), plain-chroot's privilege drop and session (setpriv, setsid), mounts", need: "run", commands: ["unshare", "setpriv", "setsid", "mount"], packages: { debian: "util-linux mount", fedora: "util-linux", alpine: "util-linux" } },
  { id: "coreutils", name: "coreutils", usedFor: "chroot(8) for `chroot` and `plain-chroot`, mknod for /dev nodes, timeout as the supervisor that ends a plain-chroot or proot step with kiln", need: "run", commands: ["chroot", "mknod", "timeout"], packages: { debian: "coreutils", fedora: "coreutils", alpine: "coreutils" } },
  { id: "busybox", name: "static busybox", usedFor: "the preflight's probe container and the hardened chroot's final unmount", need: "run", commands: ["busybox"], packages: { debian: "busybox-static", fedora: "busybox", alpine: "busybox-static" } },
  { id: "proot", name: "proot", usedFor: "`--isolation proot` (non-root pods: ptrace path translation)", need: "optional", commands: ["proot"], packages: { debian: "proot", fedora: "proot", alpine: "proot" } },
  { id: "fakeroot", name: "fakeroot", usedFor: "`--isolation proot` as non-root: records the owners a step's chown sets (faked-sysv, libfakeroot preloaded in glibc images)", need: "optional", commands: ["faked-sysv", "faked"], packages: { debian: "fakeroot", fedora: "fakeroot", alpine: "fakeroot" } },
  { id: "overlayfs", name: "overlayfs", usedFor: "the `overlay` snapshotter (as root; else `dir`)", need: "optional", commands: [], packages: { debian: "(kernel)", fedora: "(kernel)", alpine: "(kernel)" } },
  { id: "scratch-fs", name: "loop devices + mkfs.ext4", usedFor: "the overlay snapshotter's scratch file system for RUN uppers", need: "optional", commands: ["mkfs.ext4", "losetup"], packages: { debian: "e2fsprogs mount", fedora: "e2fsprogs util-linux", alpine: "e2fsprogs losetup" } },
  { id: "xattr-tools", name: "getfattr/setfattr", usedFor: "file capabilities and other xattrs in layers", need: "optional", commands: ["getfattr", "setfattr"], packages: { debian: "attr", fedora: "attr", alpine: "attr" } },
  { id: "uidmap", name: "user namespaces + subuid/subgid", usedFor: "rootless builds (not root): newuidmap/newgidmap and a range in /etc/subuid, /etc/subgid", need: "optional", commands: ["newuidmap", "newgidmap"], packages: { debian: "uidmap", fedora: "shadow-utils", alpine: "shadow-uidmap" } },
  { id: "zstd", name: "zstd", usedFor: "zstd base layers on Node.js without zlib zstd (before 22.15)", need: "optional", commands: ["zstd"], packages: { debian: "zstd", fedora: "zstd", alpine: "zstd" } },
  { id: "qemu", name: "qemu-user-static + binfmt_misc", usedFor: "RUN for a foreign `--platform` (emulation)", need: "optional", commands: ["qemu-aarch64-static", "qemu-x86_64-static"], packages: { debian: "qemu-user-static", fedora: "qemu-user-static", alpine: "qemu-openrc qemu-aarch64 qemu-x86_64" } },
  { id: "tini", name: "static tini", usedFor: "`kiln run --init`", need: "optional", commands: ["tini-static"], packages: { debian: "tini", fedora: "tini", alpine: "tini-static" } },
  { id: "git", name: "git", usedFor: "git build contexts, named contexts and `ADD <git-url>` (the host's git lists, fetches and checks them out)", need: "optional", commands: ["git"], packages: { debian: "git", fedora: "git", alpine: "git" } },
  { id: "ssh", name: "OpenSSH client + ssh-agent", usedFor: "SSH git remotes (ssh) and `--ssh ID=KEYFILE` (an ssh-agent kiln runs for the build, keys loaded with ssh-add)", need: "optional", commands: ["ssh", "ssh-agent", "ssh-add"], packages: { debian: "openssh-client", fedora: "openssh-clients", alpine: "openssh-client" } },
];

/** The install commands for a row, one per distribution family. */
export function installHint(p: Packages): string {
  if (p.debian.startsWith("(")) return "a kernel with overlayfs (modprobe overlay)";
  return `apt-get install ${p.debian} | dnf install ${p.fedora} | apk add ${p.alpine}`;
}

/** The README's Requirements table. */
export function requirementsMarkdown(): string {
  const rows = REQUIREMENTS.map((r) =>
    `| ${r.name} | ${r.need === "run" ? "a RUN mode" : "optional"} | ${r.usedFor} | ${r.packages.debian} | ${r.packages.fedora} | ${r.packages.alpine} |`);
  return [
    "| what | needed for | used for | Debian/Ubuntu | Fedora | Alpine |",
    "|---|---|---|---|---|---|",
    ...rows,
  ].join("\n");
}
