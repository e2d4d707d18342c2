// What attestations a build was asked for, parsed from buildx's spellings: `--provenance=true|false|
// mode=min|max`, `--sbom=true|false` and `--attest type=provenance|sbom[,mode=...][,disabled=true]`.
// Anything else is a UsageError naming the flag. `effectiveAttestations` is buildx's default, the one
// rule both the CLI and the library (`build()`) follow: min provenance when the build pushes.
import { UsageError } from "../errors.js";
import type { OutputSpec } from "../output/write.js";

export type ProvenanceMode = "min" | "max";

export interface AttestRequest {
  /**
   * SLSA provenance of this mode; `false` = none (also when the build pushes); absent = buildx's
   * default (min when pushing, see effectiveAttestations).
   */
  provenance?: ProvenanceMode | false;
  /** An SPDX SBOM of the final image. */
  sbom?: boolean;
  /** `--attest-referrers`: also push every statement as an OCI 1.1 artifact whose subject is its image. */
  referrers?: boolean;
}

function csv(value: string, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new UsageError("OPTION_INVALID", `${flag}: "${part}" is not KEY=VALUE`);
    out[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim();
  }
  return out;
}

function bool(v: string, flag: string): boolean {
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new UsageError("OPTION_INVALID", `${flag}: "${v}" is not true or false`);
}

function mode(v: string | undefined, flag: string): ProvenanceMode {
  if (v === undefined || v === "min") return "min";
  if (v === "max") return "max";
  throw new UsageError("OPTION_INVALID", `${flag}: mode must be min or max, not "${v}"`);
}

function provenanceValue(fields: Record<string, string>, flag: string): ProvenanceMode | undefined {
  for (const k of Object.keys(fields)) {
    if (!["type", "mode", "disabled", "builder-id", "version"].includes(k)) throw new UsageError("OPTION_INVALID", `${flag}: unknown provenance option "${k}"`);
  }
  if (fields.disabled !== undefined && bool(fields.disabled, flag)) return undefined;
  return mode(fields.mode, flag);
}

/** `--provenance VALUE`: true, false, or mode=min|max[,...]. */
export function parseProvenance(value: string): ProvenanceMode | undefined {
  const flag = "--provenance";
  if (!value.includes("=")) return bool(value, flag) ? "min" : undefined;
  return provenanceValue(csv(value, flag), flag);
}

/** `--sbom VALUE`: true, false, or generator/options buildx takes (only true/false and disabled are honoured). */
export function parseSbom(value: string): boolean {
  const flag = "--sbom";
  if (!value.includes("=")) return bool(value, flag);
  const fields = csv(value, flag);
  for (const k of Object.keys(fields)) {
    if (!["type", "disabled"].includes(k)) throw new UsageError("OPTION_INVALID", `${flag}: unsupported SBOM option "${k}" (kiln uses its own scanner)`);
  }
  return !(fields.disabled !== undefined && bool(fields.disabled, flag));
}

/** Fold `--provenance`, `--sbom` and every `--attest` into one request (later flags win). */
export function attestRequest(provenance: string | undefined, sbom: string | undefined, attests: string[]): AttestRequest {
  const req: AttestRequest = {};
  const setProvenance = (m: ProvenanceMode | undefined): void => {
    req.provenance = m ?? false;
  };
  if (provenance !== undefined) setProvenance(parseProvenance(provenance));
  if (sbom !== undefined && parseSbom(sbom)) req.sbom = true;
  for (const a of attests) {
    const flag = "--attest";
    const fields = csv(a, flag);
    switch (fields.type) {
      case "provenance":
        setProvenance(provenanceValue(fields, flag));
        break;
      case "sbom":
        if (parseSbom(a)) req.sbom = true;
        else delete req.sbom;
        break;
      default:
        throw new UsageError("OPTION_INVALID", `${flag}: type must be provenance or sbom${fields.type ? `, not "${fields.type}"` : ""}`);
    }
  }
  return req;
}

/** Whether anything is asked for. */
export function wantsAttestations(req: AttestRequest | undefined): boolean {
  return req !== undefined && (req.provenance !== undefined && req.provenance !== false || req.sbom === true);
}

/** Whether an output pushes to a registry (`--push`, `type=image,push=true`, `type=registry`). */
export function pushes(outputs: readonly OutputSpec[]): boolean {
  return outputs.some((o) => o.type === "image" && o.push);
}

/** A boolean as Go's strconv.ParseBool reads it (what buildx reads its BUILDX_GIT_* variables with), undefined for anything else. */
function goBool(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (["1", "t", "T", "TRUE", "true", "True"].includes(v)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(v)) return false;
  return undefined;
}

/**
 * What the provenance records of the context's git checkout, as buildx decides it: the commit and
 * the remote unless BUILDX_GIT_INFO is false; whether the work tree has changes (a `git status`,
 * the revision then suffixed `-dirty`) only when BUILDX_GIT_CHECK_DIRTY is true (buildx turned
 * that check off by default in 0.10.4, for its cost).
 */
export function gitInfoRequest(env: NodeJS.ProcessEnv = process.env): { info: boolean; checkDirty: boolean } {
  return { info: goBool(env.BUILDX_GIT_INFO) ?? true, checkDirty: goBool(env.BUILDX_GIT_CHECK_DIRTY) ?? false };
}

/** BUILDX_NO_DEFAULT_ATTESTATIONS as buildx reads it: a boolean, else any non-empty value is true. */
export function noDefaultAttestations(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.BUILDX_NO_DEFAULT_ATTESTATIONS;
  if (v === undefined) return false;
  const t = v.trim().toLowerCase();
  if (["1", "t", "true"].includes(t)) return true;
  if (["0", "f", "false"].includes(t)) return false;
  return t !== "";
}

/**
 * The attestations a build makes: what was asked for, plus buildx's default — min provenance when
 * the build pushes and provenance was not set either way — unless BUILDX_NO_DEFAULT_ATTESTATIONS
 * is set, or an output (a docker archive) or `--format docker` cannot hold attestations. Local
 * outputs alone (type=oci, local, tar) get none by default. Undefined when nothing is made.
 */
export function effectiveAttestations(
  req: AttestRequest | undefined,
  outputs: readonly OutputSpec[],
  format: "oci" | "docker" = "oci",
  env: NodeJS.ProcessEnv = process.env,
): AttestRequest | undefined {
  const out: AttestRequest = { ...(req ?? {}) };
  const canHold = format === "oci" && !outputs.some((o) => o.type === "docker");
  if (out.provenance === undefined && pushes(outputs) && canHold && !noDefaultAttestations(env)) out.provenance = "min";
  return wantsAttestations(out) ? out : undefined;
}

/** `--attest-referrers` needs something to attest and a push to attach it to. */
export function checkReferrers(req: AttestRequest | undefined, outputs: readonly OutputSpec[]): void {
  if (!req?.referrers) return;
  if (!pushes(outputs)) throw new UsageError("OPTION_INVALID", "--attest-referrers needs a push (--push, --output type=registry or type=image,push=true)");
  if (!wantsAttestations(req)) throw new UsageError("OPTION_INVALID", "--attest-referrers: no attestation to push (provenance and SBOM are both off)");
}
