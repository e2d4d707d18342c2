// Platforms ("linux/arm64/v8"): parsing, normalising architecture aliases, matching, the host
// platform, and choosing a manifest from an index.
import { KilnError, UsageError } from "../errors.js";
import type { Descriptor, Index, Platform } from "./oci.js";

/** Parse "os/arch[/variant]" (e.g. "linux/amd64", "linux/arm64/v8"); the result is normalised. */
export function parsePlatform(s: string): Platform {
  const parts = s.trim().split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p.length === 0 || !/^[A-Za-z0-9._-]+$/.test(p))) {
    throw new KilnError("PLATFORM_INVALID", `invalid platform "${s}": expected os/arch[/variant], e.g. linux/amd64`);
  }
  const p: Platform = { os: parts[0], architecture: parts[1] };
  if (parts[2] !== undefined) p.variant = parts[2];
  return normalizePlatform(p);
}

/** Canonical spelling: aarch64 = arm64 (v8 dropped), x86_64 = amd64, armhf = arm/v7, i386 = 386. */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  let arch = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase();
  switch (arch) {
    case "aarch64":
    case "arm64":
      arch = "arm64";
      if (variant === "v8" || variant === "8") variant = undefined;
      break;
    case "x86_64":
    case "x86-64":
    case "amd64":
      arch = "amd64";
      if (variant === "v1") variant = undefined;
      break;
    case "armhf":
      arch = "arm";
      variant = "v7";
      break;
    case "armel":
      arch = "arm";
      variant = "v6";
      break;
    case "arm":
      if (variant === undefined || variant === "7") variant = "v7";
      else if (/^\d+$/.test(variant)) variant = `v${variant}`;
      break;
    case "i386":
    case "i486":
    case "i586":
    case "i686":
    case "386":
      arch = "386";
      break;
    default:
      break;
  }
  const out: Platform = { os, architecture: arch };
  if (variant !== undefined && variant.length > 0) out.variant = variant;
  if (p["os.version"] !== undefined) out["os.version"] = p["os.version"];
  if (p["os.features"] !== undefined) out["os.features"] = p["os.features"];
  return out;
}

/** Architectures (after normalising) and their variants kiln can name a target platform with. */
const KNOWN_ARCHITECTURES: Readonly<Record<string, readonly string[]>> = {
  amd64: ["v2", "v3", "v4"],
  arm64: ["v8.1", "v8.2", "v8.3", "v8.4", "v8.5", "v8.6", "v8.7", "v8.8", "v8.9", "v9", "v9.1", "v9.2", "v9.3", "v9.4", "v9.5"],
  arm: ["v5", "v6", "v7", "v8"],
  "386": [],
  ppc64le: [],
  ppc64: [],
  s390x: [],
  riscv64: [],
  mips64le: [],
  mips64: [],
  mipsle: [],
  mips: [],
  loong64: [],
};

/**
 * The target platforms of `--platform a,b,...` (buildx syntax), normalised as containerd does
 * (linux/arm64/v8 = linux/arm64, linux/arm = linux/arm/v7), duplicates dropped. kiln builds Linux
 * images: another OS, an unknown architecture or variant, or a malformed entry is a UsageError.
 */
export function parseTargetPlatforms(text: string): Platform[] {
  const entries = text.split(",").map((s) => s.trim());
  if (entries.some((e) => e === "")) throw new UsageError("PLATFORM_INVALID", `--platform ${text}: empty platform in the list`);
  const out: Platform[] = [];
  for (const entry of entries) {
    let p: Platform;
    try {
      p = parsePlatform(entry);
    } catch (err) {
      throw new UsageError("PLATFORM_INVALID", (err as Error).message);
    }
    if (p.os !== "linux") throw new UsageError("PLATFORM_INVALID", `unsupported platform "${entry}": kiln builds linux images only`);
    const variants = KNOWN_ARCHITECTURES[p.architecture];
    if (variants === undefined) {
      throw new UsageError("PLATFORM_INVALID", `unknown architecture in platform "${entry}" (known: ${Object.keys(KNOWN_ARCHITECTURES).join(", ")})`);
    }
    if (p.variant !== undefined && !variants.includes(p.variant)) {
      throw new UsageError("PLATFORM_INVALID", `unknown variant "${p.variant}" in platform "${entry}"`);
    }
    if (!out.some((q) => formatPlatform(q) === formatPlatform(p))) out.push(p);
  }
  return out;
}

/** "linux/arm64", "linux/arm/v7". */
export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** The platform of the machine kiln runs on. */
export function hostPlatform(): Platform {
  const archMap: Record<string, string> = {
    x64: "amd64",
    arm64: "arm64",
    arm: "arm",
    ia32: "386",
    ppc64: "ppc64le",
    s390x: "s390x",
    riscv64: "riscv64",
    loong64: "loong64",
    mips: "mips",
    mipsel: "mipsle",
  };
  const p: Platform = { os: process.platform === "win32" ? "windows" : process.platform, architecture: archMap[process.arch] ?? process.arch };
  if (process.arch === "arm") {
    // Node records the ARM version it was built for; v7 is the common default.
    const vars = process.config.variables as unknown as Record<string, unknown>;
    const v = vars["arm_version"];
    p.variant = typeof v === "string" || typeof v === "number" ? `v${v}` : "v7";
  }
  return normalizePlatform(p);
}

/** Whether an image for `have` satisfies a request for `want` (variant only compared when asked). */
export function platformMatches(want: Platform, have: Platform): boolean {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return false;
  if (w.variant !== undefined && w.variant !== h.variant) return false;
  if (w["os.version"] !== undefined && h["os.version"] !== undefined && w["os.version"] !== h["os.version"]) return false;
  return true;
}

function isAttestation(d: Descriptor): boolean {
  if (d.annotations?.["vnd.docker.reference.type"] !== undefined) return true;
  return d.platform?.os === "unknown" && d.platform?.architecture === "unknown";
}

/** Pick the manifest for `want` from an index; a clear error lists what the index offers. */
export function selectManifest(index: Index, want: Platform): Descriptor {
  const candidates = (index.manifests ?? []).filter((d) => !isAttestation(d));
  const w = normalizePlatform(want);
  const withPlatform = candidates.filter((d) => d.platform !== undefined);
  // Prefer an exact variant match, then any entry the matcher accepts.
  const exact = withPlatform.find((d) => {
    const h = normalizePlatform(d.platform as Platform);
    return h.os === w.os && h.architecture === w.architecture && h.variant === w.variant;
  });
  if (exact) return exact;
  const loose = withPlatform.find((d) => platformMatches(w, d.platform as Platform));
  if (loose) return loose;
  // An index with a single platform-less manifest (as some layouts write) is taken as-is.
  if (candidates.length === 1 && candidates[0].platform === undefined) return candidates[0];
  const available = withPlatform.map((d) => formatPlatform(normalizePlatform(d.platform as Platform)));
  throw new KilnError("PLATFORM_MISMATCH", 
    `no image for platform ${formatPlatform(w)} (available: ${available.length > 0 ? [...new Set(available)].join(", ") : "none"})`,
  );
}
