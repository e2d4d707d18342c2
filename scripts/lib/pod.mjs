// The simulated pod shared by test/pod/ and scripts/bench-pod.mjs: Docker's 14 default
// capabilities, the podman flags of each pod variant, the flags every pod gets here (runc, the
// ulimits podman can set on this host), and loading kiln's image into podman once (by its
// config digest, the image id podman gives it).
//
//   import { COMMON_ARGS, variantArgs, loadImage } from "./pod.mjs";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** Docker's default capabilities (moby's oci/caps/defaults.go), as a pod gets them. */
export const DOCKER_DEFAULT_CAPS = [
  "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
  "NET_BIND_SERVICE", "NET_RAW", "SYS_CHROOT", "MKNOD", "AUDIT_WRITE", "SETFCAP",
];

/** Every pod: runc (crun refuses the host's hybrid cgroups), ulimits podman can set here, no --privileged, no --userns. */
export const COMMON_ARGS = ["--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];

export const VARIANTS = ["root", "user1000", "user1000-nocaps"];

/**
 * podman flags of a pod variant. `user1000` passes no --cap-add: podman 4 gives capabilities
 * named by --cap-add to a non-root user as *ambient* (effective) capabilities, which no
 * Kubernetes pod does (a runAsUser pod has an empty effective set); without --cap-add the
 * effective set is empty, as in Kubernetes, and the bounding set is podman's default (Docker's
 * minus MKNOD, NET_RAW, AUDIT_WRITE). `user1000-nocaps` is the "restricted" Pod Security
 * Standard's pod: no capabilities at all and no_new_privs (allowPrivilegeEscalation: false).
 */
export function variantArgs(variant) {
  switch (variant) {
    case "root":
      return ["--cap-drop=ALL", `--cap-add=${DOCKER_DEFAULT_CAPS.join(",")}`];
    case "user1000":
      return ["--user", "1000"];
    case "user1000-nocaps":
      return ["--cap-drop=ALL", "--user", "1000", "--security-opt", "no-new-privileges"];
    default:
      throw new Error(`unknown pod variant ${variant}`);
  }
}

function podman(args) {
  const r = spawnSync("podman", args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`podman cannot run here: ${r.error.message} (Debian package podman)`);
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Loads the image built by buildKilnImage (`img`: { layout, digest, dockerArchive }) into podman
 * unless there already, checks that podman can start it, and returns its id.
 */
export function loadImage(img) {
  const blob = (d) => join(img.layout, "blobs", "sha256", d.slice("sha256:".length));
  const id = JSON.parse(readFileSync(blob(img.digest), "utf8")).config.digest.slice("sha256:".length);
  if (podman(["image", "exists", id]).code !== 0) {
    const r = podman(["load", "-q", "-i", img.dockerArchive]);
    if (r.code !== 0) throw new Error(`podman load -i ${img.dockerArchive} failed: ${r.stderr.trim()}`);
  }
  const probe = podman(["run", "--rm", ...COMMON_ARGS, "--entrypoint", "true", id]);
  if (probe.code !== 0) throw new Error(`podman cannot run kiln's image here: ${probe.stderr.trim().split("\n").pop()}`);
  return id;
}

/**
 * True when podman lost the exit code of a `--rm` container it waited for (podman 4.3 under load:
 * "getting exit code of container ... from DB: no such exit code", exit 127) although the
 * container ended normally: such a run says nothing about kiln and is run once more.
 */
export function lostExitCode(code, stderr) {
  return code === 127 && /getting exit code of container \w+ from DB: no such exit code/.test(stderr);
}
