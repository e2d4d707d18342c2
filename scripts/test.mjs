#!/usr/bin/env node
// The README's test command (`npm test`): makes sure the tools the tests use are installed
// (Debian packages; installed with apt-get when running as root, else a loud failure naming
// them), compiles the TypeScript, then runs the whole vitest suite. Exits non-zero on failure.
import { $, which, fs, path, os } from "zx";

$.verbose = false;

// command -> Debian package that provides it
const tools = {
  skopeo: "skopeo",
  umoci: "umoci",
  "docker-registry": "docker-registry",
  crun: "crun",
  runc: "runc",
  busybox: "busybox-static",
  buildah: "buildah",
  openssl: "openssl",
  newuidmap: "uidmap",
  unshare: "util-linux",
  xz: "xz-utils",
  bzip2: "bzip2",
  setfattr: "attr",
  chroot: "coreutils",
  proot: "proot", // --isolation proot (ptrace path translation, non-root pods)
  "faked-sysv": "fakeroot", // owners a non-root proot step sets (test/engine/e2e-proot-owners)
  gcc: "gcc", // the static chroot-escape helper of the plain-chroot test (also needs libc6-dev)
  htpasswd: "apache2-utils",
  losetup: "mount", // overlay snapshotter: mounts and the scratch file system's loop device
  "mkfs.ext4": "e2fsprogs",
  debootstrap: "debootstrap", // the Debian base of scripts/bench-*.mjs and of test/pod/
  zstd: "zstd", // zstd layers on Node.js without zlib zstd, and the tests' zstd bases
  podman: "podman", // test/pod/: kiln's own image run as a pod
  "qemu-aarch64-static": "qemu-user-static", // emulated RUN for linux/arm64 (test/engine/e2e-emulation)
  git: "git", // git sources (git daemon, git http-backend: test/engine/e2e-git*) and the provenance of a git checkout (test/context/vcs)
  rpmbuild: "rpm", // a real rpmdb.sqlite for the SBOM scanner's RPM reader (test/helpers/rpmdb.ts)
  go: "golang-go", // real Go binaries for the SBOM scanner's build-info reader (test/helpers/go-binary.ts)
  "tini-static": "tini", // kiln run --init (test/container/run-limits)
  sshd: "openssh-server", // ssh:// git contexts and RUN --mount=type=ssh (test/engine/e2e-git-ssh)
  "ssh-agent": "openssh-client", // --ssh KEYFILE, ssh-add, ssh-keygen
  mmdebstrap: "mmdebstrap", // the arm64 Debian base of scripts/check-debian-arm64.mjs (issue #13)
  "arch-test": "arch-test", // mmdebstrap's check that a foreign architecture runs (emulated)
  tmux: "tmux", // the terminal the live progress view is checked on (test/cli/progress-live)
};

const missing = [];
for (const [cmd, pkg] of Object.entries(tools)) {
  if (!(await which(cmd, { nothrow: true }))) missing.push(pkg);
}
if (missing.length > 0) {
  const pkgs = [...new Set(missing)];
  if (process.getuid?.() !== 0) {
    console.error(`kiln tests need these Debian packages: ${pkgs.join(" ")}\n` +
      `install them with: sudo apt-get install -y ${pkgs.join(" ")}`);
    process.exit(1);
  }
  console.log(`installing test tools: ${pkgs.join(" ")}`);
  try {
    await $({ env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } })`apt-get update`;
    await $({ env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } })`apt-get install -y --no-install-recommends ${pkgs}`;
  } catch (err) {
    console.error(`failed to install ${pkgs.join(" ")}: ${err.stderr ?? err.message}`);
    process.exit(1);
  }
}

await $({ stdio: "inherit" })`npm run --silent build`;
const args = process.argv.slice(2);
const report = path.join(os.tmpdir(), `kiln-vitest-${process.pid}.json`);
const res = await $({ stdio: "inherit", nothrow: true })`npx vitest run --reporter=default --reporter=json --outputFile.json=${report} ${args}`;
// A plain closing line any CI can read: "N passed, N failed".
try {
  const r = JSON.parse(await fs.readFile(report, "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests + (r.numTotalTests - r.numPassedTests - r.numFailedTests)} failed`);
} catch {
  console.log("0 passed, 1 failed");
} finally {
  await fs.rm(report, { force: true });
}
process.exit(res.exitCode ?? 1);
