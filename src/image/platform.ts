// Platforms ("linux/arm64/v8"): parsing, normalising architecture aliases, matching, the host
// platform, and choosing a manifest from an index.
import { KilnError } from "../errors.js";
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
